"""The one typed settings object for every run: local stack, Docker stack, cloud.

Values come from (later wins): `.env.example` (the documented safe local
defaults), `.env` (the user's overrides), then the process environment.
No credential, endpoint or bucket name is written in code.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_files() -> tuple[Path, ...]:
    root = Path(os.environ.get("STOCKLAKE_HOME", PROJECT_ROOT))
    return (root / ".env.example", root / ".env")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=_env_files(),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        env_ignore_empty=True,
    )

    # Where the embedded stack keeps its data, PID files and logs.
    state_dir: Path = Field(alias="STATE_DIR")
    bind_host: str = Field(alias="BIND_HOST")

    # PostgreSQL: the fallback warehouse and Airflow's metadata DB.
    postgres_host: str = Field(alias="POSTGRES_HOST")
    postgres_port: int = Field(alias="POSTGRES_PORT")
    postgres_user: str = Field(alias="POSTGRES_USER")
    postgres_password: str = Field(default="", alias="POSTGRES_PASSWORD")
    warehouse_db: str = Field(alias="WAREHOUSE_DB")
    warehouse_schema: str = Field(alias="WAREHOUSE_SCHEMA", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    airflow_db: str = Field(alias="AIRFLOW_DB")
    postgres_bin_dir: Path | None = Field(default=None, alias="POSTGRES_BIN_DIR")
    # The embedded cluster syncs every commit to disk unless this is false.
    postgres_durable: bool = Field(alias="POSTGRES_DURABLE")

    # S3 lake: MinIO, AWS S3 or the embedded S3 server.
    s3_endpoint_url: str = Field(alias="S3_ENDPOINT_URL")
    s3_access_key: str = Field(alias="S3_ACCESS_KEY")
    s3_secret_key: str = Field(alias="S3_SECRET_KEY")
    s3_region: str = Field(alias="S3_REGION")
    lake_bucket: str = Field(alias="LAKE_BUCKET")
    # The embedded S3 server `stocklake up` starts when the endpoint is on this machine.
    s3_server: Literal["seaweedfs", "minio", "moto"] = Field(alias="S3_SERVER")
    minio_binary: str | None = Field(default=None, alias="MINIO_BINARY")
    # SeaweedFS's internal ports (master, volume, filer, gRPC, Iceberg): 8 from this one.
    seaweedfs_ports_from: int = Field(alias="SEAWEEDFS_PORTS_FROM")
    # The lake console (SeaweedFS admin UI); its gRPC port is this + 10000.
    lake_console_port: int = Field(alias="LAKE_CONSOLE_PORT")

    # Kafka: a real broker, or the embedded Kafka-compatible one.
    kafka_bootstrap_servers: str = Field(alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_home: Path | None = Field(default=None, alias="KAFKA_HOME")
    # Where the embedded Tansu broker keeps its log: a bucket of its own on the S3
    # endpoint (kept across restarts), or memory (lost when it stops).
    kafka_storage: Literal["s3", "memory"] = Field(alias="KAFKA_STORAGE")
    kafka_bucket: str = Field(alias="KAFKA_BUCKET")
    topic_historical: str = Field(alias="TOPIC_HISTORICAL")
    topic_realtime: str = Field(alias="TOPIC_REALTIME")
    topic_historical_partitions: int = Field(alias="TOPIC_HISTORICAL_PARTITIONS", ge=1)
    topic_realtime_partitions: int = Field(alias="TOPIC_REALTIME_PARTITIONS", ge=1)

    # Spark: local[*] unless a cluster is named.
    spark_master: str = Field(alias="SPARK_MASTER")
    spark_jars_dir: Path | None = Field(default=None, alias="SPARK_JARS_DIR")
    spark_shuffle_partitions: int = Field(alias="SPARK_SHUFFLE_PARTITIONS", ge=1)
    # A real-time tick this far (event time) ahead of the latest one the landing run has
    # landed is quarantined (ahead_of_stream): one bad clock must not move the watermark.
    landing_max_ahead_seconds: float = Field(alias="LANDING_MAX_AHEAD_SECONDS", gt=0)
    # spark stream: a micro-batch that drops more than this share of its ticks as late
    # fails the run (fail: exit 4) or only warns (warn).
    stream_max_late_ratio: float = Field(alias="STREAM_MAX_LATE_RATIO", ge=0, le=1)
    stream_late_action: Literal["fail", "warn"] = Field(alias="STREAM_LATE_ACTION")

    # Warehouse: Snowflake when an account is configured, else PostgreSQL.
    warehouse: Literal["auto", "postgres", "snowflake"] = Field(alias="WAREHOUSE")
    snowflake_account: str | None = Field(default=None, alias="SNOWFLAKE_ACCOUNT")
    snowflake_user: str | None = Field(default=None, alias="SNOWFLAKE_USER")
    snowflake_password: str | None = Field(default=None, alias="SNOWFLAKE_PASSWORD")
    snowflake_private_key_path: Path | None = Field(
        default=None, alias="SNOWFLAKE_PRIVATE_KEY_PATH"
    )
    snowflake_role: str | None = Field(default=None, alias="SNOWFLAKE_ROLE")
    snowflake_warehouse: str | None = Field(default=None, alias="SNOWFLAKE_WAREHOUSE")
    snowflake_database: str | None = Field(default=None, alias="SNOWFLAKE_DATABASE")
    snowflake_schema: str | None = Field(default=None, alias="SNOWFLAKE_SCHEMA")

    # Airflow (embedded: api-server and scheduler on the bind host).
    airflow_port: int = Field(alias="AIRFLOW_PORT")
    airflow_home: Path | None = Field(default=None, alias="AIRFLOW_HOME")
    airflow_task_retries: int = Field(alias="AIRFLOW_TASK_RETRIES", ge=0)

    @field_validator("postgres_port", "airflow_port")
    @classmethod
    def _port_in_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is outside 1..65535")
        return value

    @field_validator("seaweedfs_ports_from")
    @classmethod
    def _port_block(cls, value: int) -> int:
        if not 1024 <= value <= 65535 - 8:
            raise ValueError(f"{value}: 8 ports from it must fit in 1024..65535")
        return value

    @field_validator("lake_console_port")
    @classmethod
    def _console_port(cls, value: int) -> int:
        # SeaweedFS's maintenance worker dials the admin gRPC port at HTTP port + 10000.
        if not 1024 <= value <= 65535 - 10000:
            raise ValueError(f"{value} must be in 1024..55535 (its gRPC port is +10000)")
        return value

    @field_validator("lake_bucket", "kafka_bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value) or ".." in value:
            raise ValueError(
                "an S3 bucket name has 3-63 characters: lower-case letters, digits, '.' and "
                "'-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _snowflake_complete(self) -> Settings:
        if self.warehouse == "snowflake":
            missing = [
                alias
                for alias, value in (
                    ("SNOWFLAKE_ACCOUNT", self.snowflake_account),
                    ("SNOWFLAKE_USER", self.snowflake_user),
                    ("SNOWFLAKE_DATABASE", self.snowflake_database),
                    ("SNOWFLAKE_SCHEMA", self.snowflake_schema),
                )
                if not value
            ]
            if not (self.snowflake_password or self.snowflake_private_key_path):
                missing.append("SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH")
            if missing:
                raise ValueError("WAREHOUSE=snowflake needs " + ", ".join(missing) + " to be set")
        return self

    # Derived values: computed here so no caller rebuilds them.
    @property
    def warehouse_kind(self) -> Literal["postgres", "snowflake"]:
        if self.warehouse == "auto":
            return "snowflake" if self.snowflake_account else "postgres"
        return self.warehouse

    @property
    def state_path(self) -> Path:
        path = self.state_dir
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()

    @property
    def lake_console_url(self) -> str:
        return f"http://{self.bind_host}:{self.lake_console_port}"

    @property
    def s3_use_ssl(self) -> bool:
        return self.s3_endpoint_url.startswith("https://")

    @property
    def s3_hostport(self) -> str:
        return self.s3_endpoint_url.split("://", 1)[1]

    def postgres_dsn(self, database: str | None = None) -> str:
        """libpq connection string (psycopg 3)."""
        parts = {
            "host": self.postgres_host,
            "port": str(self.postgres_port),
            "user": self.postgres_user,
            "dbname": database or self.warehouse_db,
        }
        if self.postgres_password:
            parts["password"] = self.postgres_password
        return " ".join(f"{key}={_libpq_quote(value)}" for key, value in parts.items())

    def postgres_sqlalchemy_url(self, database: str | None = None) -> str:
        from urllib.parse import quote

        auth = quote(self.postgres_user, safe="")
        if self.postgres_password:
            auth += ":" + quote(self.postgres_password, safe="")
        db = database or self.warehouse_db
        return f"postgresql+psycopg://{auth}@{self.postgres_host}:{self.postgres_port}/{db}"

    def boto3_s3_kwargs(self) -> dict:
        """Endpoint, credentials and region for `boto3.client("s3", **...)`."""
        return {
            "endpoint_url": self.s3_endpoint_url,
            "aws_access_key_id": self.s3_access_key,
            "aws_secret_access_key": self.s3_secret_key,
            "region_name": self.s3_region,
        }

    def storage_options(self) -> dict:
        """Options for s3fs / fsspec / pyarrow's S3 filesystem."""
        return {
            "key": self.s3_access_key,
            "secret": self.s3_secret_key,
            "client_kwargs": {
                "endpoint_url": self.s3_endpoint_url,
                "region_name": self.s3_region,
            },
            "config_kwargs": {"s3": {"addressing_style": "path"}},
        }


def _libpq_quote(value: str) -> str:
    if value and all(ch.isalnum() or ch in "._-/" for ch in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _explain(error: ValidationError) -> str:
    lines = []
    fields = Settings.model_fields
    for problem in error.errors():
        name = problem["loc"][0] if problem["loc"] else ""
        field = fields.get(str(name))
        variable = field.alias if field and field.alias else str(name).upper()
        if not problem["loc"]:
            lines.append(problem["msg"].removeprefix("Value error, "))
        elif problem["type"] == "missing":
            lines.append(f"{variable} is not set (see .env.example)")
        else:
            given = problem.get("input")
            msg = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{variable}={given!r}: {msg}")
    return "invalid settings: " + "; ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read settings; a wrong value raises SettingsError naming the variable."""
    try:
        # Env files are resolved per call, so STOCKLAKE_HOME can be set late.
        return Settings(_env_file=_env_files(), **overrides)
    except ValidationError as error:
        raise SettingsError(_explain(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call get_settings.cache_clear())."""
    return load_settings()
