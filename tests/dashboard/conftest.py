"""A warehouse for the dashboard: a private schema on the shared stack's PostgreSQL.

`loaded_schema` holds the bundled real bars: daily_metrics and realtime_window_metrics
loaded by the real loader from parquet in a test bucket (so load_audit has real loads),
and daily_features from `fill_daily_features`. `empty_schema` holds nothing. Both are
dropped afterwards. `dashboard_env` points the dashboard (AppTest, in this process) at a
schema through WAREHOUSE_SCHEMA, as a user would.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

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

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def fill_daily_features(settings: Settings, schema: str, bars: pd.DataFrame | None = None) -> int:
    """daily_features rows for `bars` (default: the bundled bars), computed with pandas by
    the issue's definitions, in a table made from the core contract.

    TODO(lead): once loaders.DAILY_FEATURES and its loader land, write the features
    parquet to the test bucket and load it with the real loader instead.
    """
    frame = data.daily_features(data.daily_bars() if bars is None else bars)
    columns = [*DAILY_FEATURES_COLUMNS, ("loaded_at", "timestamp"), ("run_id", "string")]
    ddl = sql.SQL("CREATE TABLE {}.daily_features ({}, PRIMARY KEY (symbol, trade_date))").format(
        sql.Identifier(schema),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type(kind, "postgres")))
            for name, kind in columns
        ),
    )
    frame = frame.assign(loaded_at=pd.Timestamp.now(tz="UTC"), run_id="dashboard-test")
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(ddl)
    copy_rows(settings, schema, "daily_features", frame)
    return len(frame)


def copy_rows(settings: Settings, schema: str, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame (its columns in the table's order) into schema.table, as the pipeline."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="\\N")
    copy = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT csv, NULL '\\N')").format(
        sql.Identifier(schema),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name in frame.columns),
    )
    with (
        psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn,
        conn.cursor().copy(copy) as out,
    ):
        out.write(buffer.getvalue())


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
        drop_schema(settings, schema)
        fs.rm(bucket, recursive=True)


@pytest.fixture
def empty_schema(stack: Settings) -> Iterator[str]:
    """A provisioned schema with no tables at all (nothing loaded yet)."""
    schema = f"dashboard_{uuid.uuid4().hex[:12]}"
    create_warehouse_schema(stack, schema)
    try:
        yield schema
    finally:
        drop_schema(stack, schema)


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


@pytest.fixture(scope="package")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make system-deps`"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def shots(tmp_path_factory) -> Path:
    chosen = os.environ.get("DASHBOARD_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {folder}")
    return folder
