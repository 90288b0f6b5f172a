"""A warehouse for the dashboard: a private schema on the shared stack's PostgreSQL.

`loaded_schema` holds the bundled real bars: daily_metrics, daily_features and
realtime_window_metrics loaded by the real loader from parquet in a test bucket (so
load_audit has real loads). `empty_schema` holds nothing. Both are
dropped afterwards. `dashboard_env` points the dashboard (AppTest, in this process) at a
schema through WAREHOUSE_SCHEMA, as a user would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import loaders
from infra.postgres_roles import create_warehouse_schema
from stocklake.s3 import lake_filesystem, s3_client
from stocklake.settings import Settings, get_settings, load_settings
from tests.browser import chromium
from tests.dashboard import data
from tests.warehouse import drop_schema


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
        bars = data.daily_bars()
        data.put_daily(fs, bucket, data.daily_metrics(bars))
        data.put_features(fs, bucket, data.daily_features(bars))
        data.put_windows(fs, bucket, data.window_metrics())
        for table in (
            loaders.DAILY_METRICS,
            loaders.DAILY_FEATURES,
            loaders.REALTIME_WINDOW_METRICS,
        ):
            summary = loaders.load_table(settings, table, schema=schema, fs=fs)
            assert summary.status == "succeeded", summary
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
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="package")
def shots(tmp_path_factory) -> Path:
    chosen = os.environ.get("DASHBOARD_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {folder}")
    return folder
