"""What every warehouse backend shares: the `Warehouse` protocol and the types it speaks.

The backends (`loaders.postgres_backend`, `loaders.snowflake_backend`) import from here;
the factory that picks one by settings is `loaders.backends.connect_warehouse`, kept
apart so that nothing here imports a backend.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import pyarrow as pa

from loaders.tables import LOAD_AUDIT, MANAGED_TABLES, WarehouseTable
from stocklake.processes import pid_alive
from stocklake.schemas import WarehouseKind


class WarehouseError(RuntimeError):
    """The warehouse is not in the shape the loader needs; the message says what to do."""


class SchemaNotFoundError(WarehouseError):
    """The schema asked for (`--schema`, WAREHOUSE_SCHEMA, SNOWFLAKE_SCHEMA) does not exist."""


# Who a warehouse connection logs in as: the pipeline's role, or `stocklake sql`'s
# read-only one (PostgreSQL; Snowflake has the one configured user).
WarehouseLogin = Literal["pipeline", "reader"]

# Without a session lock to ask (Snowflake), a `running` load on another host is
# taken for dead only after this long.
RUNNING_LOAD_STALE_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int


@dataclass(frozen=True)
class AuditRecord:
    """One row of `load_audit`: what a load read, what it changed, how it ended."""

    run_id: str
    table_name: str
    load_mode: str
    source_partitions: dict[str, str]
    started_at: datetime
    rows_read: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_staged: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    finished_at: datetime | None = None
    status: str = "running"
    error: str | None = None
    pipeline_run_id: str | None = None
    logical_date: datetime | None = None
    duration_seconds: float | None = None
    loader_host: str | None = None
    loader_pid: int | None = None

    def values(self) -> dict[str, Any]:
        """Column values in `load_audit`'s order, ready to bind."""
        row = {
            "run_id": self.run_id,
            "table_name": self.table_name,
            "load_mode": self.load_mode,
            "source_partitions": json.dumps(self.source_partitions, sort_keys=True),
            "rows_read": self.rows_read,
            "rows_rejected": self.rows_rejected,
            "rows_duplicate": self.rows_duplicate,
            "rows_staged": self.rows_staged,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "error": self.error,
            "pipeline_run_id": self.pipeline_run_id,
            "logical_date": self.logical_date,
            "duration_seconds": self.duration_seconds,
            "loader_host": self.loader_host,
            "loader_pid": self.loader_pid,
        }
        assert tuple(row) == LOAD_AUDIT.column_names
        return row

    def finished(self, at: datetime, **changes: Any) -> AuditRecord:
        """The record as of the load's end at `at`: its duration is counted from `started_at`."""
        duration = (at - self.started_at).total_seconds()
        return replace(self, finished_at=at, duration_seconds=duration, **changes)


@dataclass(frozen=True)
class DeadLoad:
    """A `running` audit row whose load is gone, now marked `failed` with `cause`."""

    run_id: str
    table_name: str
    cause: str


def process_gone(host: str | None, pid: int | None, what: str = "load process") -> str | None:
    """The cause when the process (a load, by default) is known to be gone: it ran here and
    has exited. None while it runs, or when it ran on another host (it cannot be told)."""
    if host == socket.gethostname() and pid is not None and not pid_alive(pid):
        return f"{what} gone (pid {pid} on host {host})"
    return None


def stale_cause(
    host: str | None, pid: int | None, started_at: datetime, now: datetime
) -> str | None:
    """Snowflake's rule (no session lock to ask): gone here, or running for too long."""
    gone = process_gone(host, pid)
    if gone or now - started_at < RUNNING_LOAD_STALE_AFTER:
        return gone
    hours = RUNNING_LOAD_STALE_AFTER.total_seconds() / 3600
    return f"interrupted: still running after {hours:.0f} h (pid {pid} on host {host})"


class Warehouse(Protocol):
    """What a load needs from a warehouse. Each backend keeps these guarantees:

    - `migrate` is idempotent and safe to run before every load;
    - `begin_load` commits the load's `running` audit row before anything else happens;
    - `write_load` stages the rows in bulk, merges them into the table and marks the
      audit row `succeeded` in ONE transaction: on any error nothing of it is visible;
    - `record_failure` marks the audit row `failed` in its own transaction;
    - `fail_dead_loads` marks `failed` the `running` rows whose load is gone (killed
      process or server), with the cause when known.
    """

    kind: WarehouseKind

    def migrate(self) -> list[int]: ...

    def table_columns(self, table: WarehouseTable) -> dict[str, str]: ...

    def loaded_partitions(self, table: WarehouseTable) -> dict[str, str]: ...

    def begin_load(self, audit: AuditRecord) -> None: ...

    def write_load(
        self, table: WarehouseTable, rows: pa.Table, audit: AuditRecord
    ) -> MergeCounts: ...

    def record_failure(self, audit: AuditRecord) -> None: ...

    def fail_dead_loads(self, table_name: str | None = None) -> list[DeadLoad]: ...

    def write_rows(
        self, table: WarehouseTable, rows: Sequence[Mapping[str, Any]], *, replace: bool = True
    ) -> None: ...

    def read_rows(
        self,
        table: WarehouseTable,
        where: Mapping[str, Any],
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def query(
        self, statement: str, *, allow_multiple: bool = False, read_only: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Warehouse: ...

    def __exit__(self, *exc: object) -> None: ...


def fold_loaded_partitions(audit_partitions: list[str]) -> dict[str, str]:
    """Partition -> fingerprint as of the latest successful load of each partition.

    `audit_partitions` are `load_audit.source_partitions` values, oldest load first.
    """
    loaded: dict[str, str] = {}
    for value in audit_partitions:
        loaded.update(json.loads(value or "{}"))
    return loaded


def check_columns(found: dict[str, dict[str, str]], backend: str) -> None:
    """Fail clearly when a migrated table lacks a defined column or has one too many."""
    for table in MANAGED_TABLES:
        columns = found.get(table.name, {})
        missing = [name for name in table.column_names if name not in columns]
        extra = [name for name in columns if name not in table.column_names]
        if missing or extra:
            detail = []
            if missing:
                detail.append("lacks " + ", ".join(missing))
            if extra:
                detail.append("has undefined " + ", ".join(extra))
            raise WarehouseError(
                f"{backend} table {table.name} "
                + " and ".join(detail)
                + ": append a Migration in loaders/tables.py for the change"
            )
