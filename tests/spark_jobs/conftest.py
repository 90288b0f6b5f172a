"""Fixtures for the Spark job tests: one Spark session, one throw-away bucket per session."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from stocklake.s3 import s3_client as make_s3_client
from stocklake.settings import Settings, get_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings pointing at the shared stack's S3 endpoint.

    Without the lead's launcher (infra.local_stack) a private moto server stands in,
    so these tests still run against a real S3 HTTP endpoint.
    """
    try:
        import infra.local_stack  # noqa: F401
    except ImportError:
        from moto.server import ThreadedMotoServer

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        yield get_settings().model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{port}"})
        server.stop()
        return
    yield request.getfixturevalue("stack")


@pytest.fixture(scope="session")
def s3_client(s3_settings: Settings):
    return make_s3_client(s3_settings)


def _empty_and_delete(client, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def lake_settings(s3_settings: Settings, s3_client) -> Iterator[Settings]:
    """Settings with a unique bucket for one test module (parallel runs never collide)."""
    bucket = f"sl-spark-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket)
    yield s3_settings.model_copy(update={"lake_bucket": bucket})
    _empty_and_delete(s3_client, bucket)


@pytest.fixture(scope="session")
def spark(s3_settings: Settings):
    from spark_jobs.session import build_spark

    settings = s3_settings.model_copy(update={"spark_master": "local[2]"})
    session = build_spark(settings, "stocklake-tests", {"spark.driver.memory": "2g"})
    yield session
    session.stop()
