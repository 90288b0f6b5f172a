"""Fixtures for the loaders: a bucket of our own, and a warehouse of each kind.

PostgreSQL is the real local server, in a schema unique to the test; Snowflake is
fakesnow (in-process, DuckDB underneath). Both are cleaned up afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from infra.postgres_roles import create_warehouse_schema
from loaders.backends import connect_warehouse
from loaders.tables import WarehouseTable
from loaders.warehouse import AuditRecord
from stocklake.s3 import lake_filesystem, s3_client
from stocklake.settings import Settings, get_settings, load_settings
from tests.loaders.data import TestLake


@pytest.fixture
def lake(stack: Settings) -> Iterator[TestLake]:
    """An empty bucket for one test, removed afterwards."""
    bucket = f"loaders-{uuid.uuid4().hex[:12]}"
    s3_client(stack).create_bucket(Bucket=bucket)
    fs = lake_filesystem(stack)
    try:
        yield TestLake(fs, bucket)
    finally:
        fs.rm(bucket, recursive=True)


def _fix_fakesnow_temp_table_comment(monkeypatch: pytest.MonkeyPatch) -> None:
    """fakesnow 0.12.1 records an empty comment for every CREATE TEMPORARY TABLE in its
    global catalog; its MERGE emulation creates one, so any MERGE inside an explicit
    transaction fails with DuckDB's "a single transaction can only write to a single
    attached database". Real Snowflake has no such limit: drop only the empty comment."""
    import fakesnow.transforms as transforms

    original = transforms.extract_comment_on_table

    def without_empty_comment(expression: Any) -> Any:
        result = original(expression)
        comment = result.args.get("table_comment")
        if comment is not None and comment[1] is None:
            del result.args["table_comment"]
        return result

    monkeypatch.setattr(transforms, "extract_comment_on_table", without_empty_comment)


@dataclass
class Backend:
    """A warehouse under test: settings that select it and the schema to use."""

    kind: str
    settings: Settings
    schema: str

    def rows(self, table: WarehouseTable, columns: tuple[str, ...] | None = None) -> list[tuple]:
        names = ", ".join(columns or table.column_names)
        with connect_warehouse(self.settings, schema=self.schema) as warehouse:
            return warehouse.query(f"SELECT {names} FROM {table.name}")[1]

    def audit(self, table: WarehouseTable) -> list[dict[str, Any]]:
        with connect_warehouse(self.settings, schema=self.schema) as warehouse:
            columns, rows = warehouse.query(
                f"SELECT * FROM load_audit WHERE table_name = '{table.name}' ORDER BY started_at"
            )
        return [dict(zip([c.lower() for c in columns], row, strict=True)) for row in rows]


def abandoned_load(
    backend: Backend,
    table: WarehouseTable,
    pid: int,
    host: str | None = None,
    started_at: datetime | None = None,
) -> str:
    """A load that committed its `running` row, then its process (and session) vanished."""
    audit = AuditRecord(
        run_id=uuid.uuid4().hex,
        table_name=table.name,
        load_mode="incremental",
        source_partitions={},
        started_at=started_at or datetime.now(UTC),
        loader_host=host or socket.gethostname(),
        loader_pid=pid,
    )
    with connect_warehouse(backend.settings, schema=backend.schema) as warehouse:
        warehouse.migrate()
        warehouse.begin_load(audit)
    return audit.run_id


def exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _postgres(lake: TestLake) -> Iterator[Backend]:
    schema = f"loaders_{uuid.uuid4().hex[:12]}"
    settings = load_settings(LAKE_BUCKET=lake.bucket, WAREHOUSE="postgres")
    # Provisioned as `stocklake up` provisions WAREHOUSE_SCHEMA: the pipeline's role
    # owns it and cannot create schemas itself.
    create_warehouse_schema(settings, schema)
    try:
        yield Backend("postgres", settings, schema)
    finally:
        with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _snowflake(lake: TestLake, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    import fakesnow

    _fix_fakesnow_temp_table_comment(monkeypatch)
    schema = f"loaders_{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        LAKE_BUCKET=lake.bucket,
        WAREHOUSE="snowflake",
        SNOWFLAKE_ACCOUNT="fakesnow",
        SNOWFLAKE_USER="loader",
        SNOWFLAKE_PASSWORD="not-used-by-fakesnow",
        SNOWFLAKE_DATABASE="stocklake",
        SNOWFLAKE_SCHEMA=schema,
    )
    # A fresh in-memory DuckDB per test: nothing to clean up afterwards.
    with fakesnow.patch():
        yield Backend("snowflake", settings, schema)


@pytest.fixture(params=["postgres", "snowflake"])
def backend(
    request: pytest.FixtureRequest, lake: TestLake, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Each warehouse in turn: PostgreSQL in a schema of its own, Snowflake via fakesnow."""
    if request.param == "postgres":
        yield from _postgres(lake)
    else:
        yield from _snowflake(lake, monkeypatch)


@pytest.fixture
def postgres(lake: TestLake) -> Iterator[Backend]:
    """The real local PostgreSQL, in a schema of its own."""
    yield from _postgres(lake)


@pytest.fixture
def cli(postgres: Backend, lake: TestLake, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The `stocklake` command on this test's bucket and PostgreSQL schema."""
    monkeypatch.setenv("LAKE_BUCKET", lake.bucket)
    monkeypatch.setenv("WAREHOUSE", "postgres")
    monkeypatch.setenv("WAREHOUSE_SCHEMA", postgres.schema)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
