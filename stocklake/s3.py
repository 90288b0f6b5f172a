"""The lake's S3 clients, made in one place from the settings.

Every hop reaches the lake through these: `s3_client` (boto3, with botocore's own
`standard` retry mode: bounded attempts with jittered exponential backoff on throttling,
5xx and connection errors) and `lake_filesystem` (s3fs, where pandas or pyarrow need a
filesystem). Spark reaches the same endpoint through s3a (`spark_jobs/session.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stocklake.settings import Settings

if TYPE_CHECKING:
    import s3fs
    from botocore.client import BaseClient

# Attempts in all, the first call included (botocore's total_max_attempts): 5 = 4 retries.
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0


def client_config(
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_pool_connections: int = 10,
) -> dict[str, Any]:
    """botocore `Config` arguments: path-style addressing, standard retries, timeouts."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    return {
        "s3": {"addressing_style": "path"},
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "max_pool_connections": max_pool_connections,
    }


def s3_client(settings: Settings, **config: Any) -> BaseClient:
    """A boto3 S3 client for the settings' endpoint; `config` overrides `client_config`."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=Config(**client_config(**config)),
    )


def storage_options(settings: Settings) -> dict[str, Any]:
    """fsspec/s3fs options for the settings' endpoint (also pandas' `storage_options`)."""
    return {
        "key": settings.s3_access_key,
        "secret": settings.s3_secret_key,
        "client_kwargs": {
            "endpoint_url": settings.s3_endpoint_url,
            "region_name": settings.s3_region,
        },
        "config_kwargs": client_config(),
    }


def lake_filesystem(settings: Settings) -> s3fs.S3FileSystem:
    """An s3fs filesystem on the settings' endpoint (paths are `bucket/key`)."""
    import s3fs

    return s3fs.S3FileSystem(**storage_options(settings))
