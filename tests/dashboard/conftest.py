"""A warehouse for the dashboard: a private schema on the shared stack's PostgreSQL.

`loaded_schema` holds the bundled real bars: daily_metrics and realtime_window_metrics
loaded by the real loader from parquet in a test bucket (so load_audit has real loads),
and daily_features from `fill_daily_features`. `empty_schema` holds nothing. Both are
dropped afterwards. `dashboard_env` points the dashboard (AppTest, in this process) at a
schema through WAREHOUSE_SCHEMA, as a user would.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import pandas as pd
import psycopg
import pytest
from psycopg import sql

import loaders
from infra.postgres_roles import create_warehouse_schema
from stocklake.s3 import lake_filesystem, s3_client
from stocklake.schemas import DAILY_FEATURES_COLUMNS, sql_type
from stocklake.settings import Settings, get_settings, load_settings
from tests.dashboard import data


def _drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def fill_daily_features(settings: Settings, schema: str) -> int:
    """daily_features rows for the bundled bars (pandas, by the issue's definitions).

    TODO(lead): once loaders.DAILY_FEATURES and its loader land, write the features
    parquet to the test bucket and load it with the real loader instead.
    """
    frame = data.daily_features(data.daily_bars())
    columns = [*DAILY_FEATURES_COLUMNS, ("loaded_at", "timestamp"), ("run_id", "string")]
    ddl = sql.SQL("CREATE TABLE {}.daily_features ({}, PRIMARY KEY (symbol, trade_date))").format(
        sql.Identifier(schema),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type(kind, "postgres")))
            for name, kind in columns
        ),
    )
    frame = frame.assign(loaded_at=pd.Timestamp.now(tz="UTC"), run_id="dashboard-test")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="\\N")
    copy = sql.SQL("COPY {}.daily_features FROM STDIN (FORMAT csv, NULL '\\N')").format(
        sql.Identifier(schema)
    )
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(ddl)
        with conn.cursor().copy(copy) as out:
            out.write(buffer.getvalue())
    return len(frame)


@pytest.fixture(scope="package")
def loaded_schema(stack: Settings) -> Iterator[str]:
    """A schema holding the bundled real data (daily metrics, features, windows, audit)."""
    schema = f"dashboard_{uuid.uuid4().hex[:12]}"
    bucket = f"dashboard-{uuid.uuid4().hex[:12]}"
    settings = load_settings(LAKE_BUCKET=bucket, WAREHOUSE="postgres")
    s3_client(settings).create_bucket(Bucket=bucket)
    fs = lake_filesystem(settings)
    create_warehouse_schema(settings, schema)
    try:
        data.put_daily(fs, bucket, data.daily_metrics(data.daily_bars()))
        data.put_windows(fs, bucket, data.window_metrics())
        for load in (loaders.load_daily, loaders.load_realtime):
            summary = load(settings, schema=schema)
            assert summary.status == "succeeded", summary
        fill_daily_features(settings, schema)
        yield schema
    finally:
        _drop_schema(settings, schema)
        fs.rm(bucket, recursive=True)


@pytest.fixture
def empty_schema(stack: Settings) -> Iterator[str]:
    """A provisioned schema with no tables at all (nothing loaded yet)."""
    schema = f"dashboard_{uuid.uuid4().hex[:12]}"
    create_warehouse_schema(stack, schema)
    try:
        yield schema
    finally:
        _drop_schema(stack, schema)


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch):
    """Point this process's settings (what the AppTest dashboard reads) at a schema."""

    def use(schema: str, **extra: str) -> None:
        monkeypatch.setenv("WAREHOUSE_SCHEMA", schema)
        monkeypatch.setenv("WAREHOUSE", "postgres")
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()
