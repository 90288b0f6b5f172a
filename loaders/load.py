"""Loading the processed zone into the warehouse, and looking at the warehouse.

These are the functions Airflow tasks and the CLI call:
`load_daily`, `load_realtime`, `load_table` and `run_query`.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import s3fs

from loaders.backends import connect_warehouse
from loaders.source import list_source_partitions, read_partitions
from loaders.tables import (
    DAILY_METRICS,
    LOAD_AUDIT,
    LOADABLE_TABLES,
    REALTIME_WINDOW_METRICS,
    WarehouseTable,
)
from loaders.transform import (
    SourcePartition,
    latest_per_key_in_key_order,
    reject_null_keys,
    select_partitions,
)
from loaders.warehouse import AuditRecord, DeadLoad, MergeCounts, Warehouse
from stocklake.s3 import lake_filesystem
from stocklake.settings import Settings


class LoadError(RuntimeError):
    """A load failed; the warehouse table is unchanged and `summary` says what was tried."""

    def __init__(self, message: str, summary: LoadSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class LoadSummary:
    run_id: str
    table: str
    mode: str
    partitions: list[str] = field(default_factory=list)
    files: int = 0
    rows_read: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    rows_staged: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    seconds: float = 0.0
    status: str = "running"
    error: str | None = None
    # The run that asked for the load: an Airflow DAG run id, or cli:<user>@<host>:<time>.
    pipeline_run_id: str = ""
    logical_date: datetime | None = None
    # Earlier loads of the table found dead (killed loader or server) and marked failed.
    dead_loads_failed: list[str] = field(default_factory=list)

    @property
    def rows_unchanged(self) -> int:
        """Staged rows the MERGE found identical in the table, so left as they were."""
        return self.rows_staged - self.rows_inserted - self.rows_updated

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (`--json`, Airflow XCom), with `rows_unchanged`."""
        data = asdict(self)
        data["rows_unchanged"] = self.rows_unchanged
        data["logical_date"] = self.logical_date.isoformat() if self.logical_date else None
        return data


def local_run_id(origin: str = "cli", at: datetime | None = None) -> str:
    """`<origin>:<user>@<host>:<UTC time to the microsecond>`: names a run started by hand,
    not by Airflow (two commands started in the same second are two runs)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in the environment nor the password database
        user = "unknown"
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return f"{origin}:{user}@{socket.gethostname()}:{moment:%Y-%m-%dT%H:%M:%S.%fZ}"


def load_mode(start: date | None, end: date | None, full_refresh: bool) -> str:
    if full_refresh:
        return "full-refresh"
    if start is not None or end is not None:
        return "dates"
    return "incremental"


def load_table(
    settings: Settings,
    table: WarehouseTable,
    *,
    start: date | None = None,
    end: date | None = None,
    full_refresh: bool = False,
    schema: str | None = None,
    fs: s3fs.S3FileSystem | None = None,
    pipeline_run_id: str | None = None,
    logical_date: datetime | None = None,
) -> LoadSummary:
    """Load processed partitions of `table` into the configured warehouse.

    Which partitions: with `start`/`end`, those dated in [start, end) (half-open like
    Airflow's data intervals: one date D is `start=D, end=D + 1 day`); with `full_refresh`,
    every partition; otherwise (incremental) every partition never loaded or changed
    since its last successful load (its files' names, sizes or ETags differ from what
    `load_audit` recorded). Dates may be combined with `full_refresh`.

    `pipeline_run_id` and `logical_date` link the load's `load_audit` row to the run that
    asked for it: an Airflow task passes its DAG run's id and logical date; without an
    id the load is named `python:<user>@<host>:<time>` (the CLI passes `cli:...`).

    Raises LoadError (the table unchanged, a failed row in `load_audit`) on any failure.
    """
    if start is not None and end is not None and end <= start:
        raise ValueError(f"end {end} must be after start {start} (end is exclusive)")
    clock = time.perf_counter()
    load = _begin(table, load_mode(start, end, full_refresh), pipeline_run_id, logical_date)
    with connect_warehouse(settings, schema=schema) as warehouse:
        try:
            _start_audited(warehouse, table, load.audit, load.summary)
            counts = _stage_and_merge(warehouse, settings, table, load, start, end, fs)
        except BaseException as error:
            _record_failure(warehouse, load.audit, load.summary, error, clock)
            if isinstance(error, Exception):
                raise LoadError(
                    f"loading {table.name} failed, the table is unchanged: {load.summary.error}",
                    load.summary,
                ) from error
            raise
    summary = load.summary
    summary.rows_inserted = counts.inserted
    summary.rows_updated = counts.updated
    summary.status = "succeeded"
    summary.seconds = time.perf_counter() - clock
    return summary


@dataclass
class _Load:
    """One load under way: its summary, and its audit row as of the last step done
    (what a failure records)."""

    summary: LoadSummary
    audit: AuditRecord


def _stage_and_merge(
    warehouse: Warehouse,
    settings: Settings,
    table: WarehouseTable,
    load: _Load,
    start: date | None,
    end: date | None,
    fs: s3fs.S3FileSystem | None,
) -> MergeCounts:
    """Choose the partitions, read and stage their rows, merge them: one transaction."""
    summary = load.summary
    fs = fs or lake_filesystem(settings)
    partitions = list_source_partitions(fs, settings.lake_bucket, table)
    loaded = warehouse.loaded_partitions(table) if summary.mode == "incremental" else None
    chosen = select_partitions(partitions, start=start, end=end, loaded=loaded)
    summary.partitions = [partition.name for partition in chosen]
    load.audit = replace(load.audit, source_partitions={p.name: p.fingerprint for p in chosen})
    rows = _rows_to_stage(fs, settings.lake_bucket, chosen, table, summary)
    load.audit = replace(
        load.audit,
        rows_read=summary.rows_read,
        rows_rejected=summary.rows_rejected,
        rows_duplicate=summary.rows_duplicate,
        rows_staged=summary.rows_staged,
    )
    return warehouse.write_load(table, rows, load.audit)


def _start_audited(
    warehouse: Warehouse, table: WarehouseTable, audit: AuditRecord, summary: LoadSummary
) -> None:
    """Migrate, fail the table's loads that died `running`, then commit this one's
    `running` row before anything else: a killed load leaves it behind, never nothing."""
    warehouse.migrate()
    dead = warehouse.fail_dead_loads(table.name)
    summary.dead_loads_failed = [f"{load.run_id}: {load.cause}" for load in dead]
    warehouse.begin_load(audit)


def _begin(
    table: WarehouseTable, mode: str, pipeline_run_id: str | None, logical_date: datetime | None
) -> _Load:
    """A new load's summary and audit record, linked to the run that asked for it."""
    summary = LoadSummary(
        run_id=uuid.uuid4().hex,
        table=table.name,
        mode=mode,
        pipeline_run_id=pipeline_run_id or local_run_id("python"),
        logical_date=logical_date,
    )
    audit = AuditRecord(
        run_id=summary.run_id,
        table_name=table.name,
        load_mode=mode,
        source_partitions={},
        started_at=datetime.now(UTC),
        pipeline_run_id=summary.pipeline_run_id,
        logical_date=logical_date,
        loader_host=socket.gethostname(),
        loader_pid=os.getpid(),
    )
    return _Load(summary, audit)


def _rows_to_stage(
    fs: s3fs.S3FileSystem,
    bucket: str,
    chosen: list[SourcePartition],
    table: WarehouseTable,
    summary: LoadSummary,
) -> pa.Table:
    """The chosen partitions' rows, null keys rejected and one row per key (the latest), in
    key order; counted."""
    source = read_partitions(fs, bucket, chosen, table)
    summary.files = source.files
    summary.rows_read = source.table.num_rows
    keyed, summary.rows_rejected = reject_null_keys(source.table, table.key)
    rows, summary.rows_duplicate = latest_per_key_in_key_order(keyed, table.key)
    summary.rows_staged = rows.num_rows
    return rows


def _record_failure(
    warehouse: Warehouse,
    audit: AuditRecord,
    summary: LoadSummary,
    error: BaseException,
    clock: float,
) -> None:
    """The summary and a `failed` audit row say what went wrong (best effort: a note if not)."""
    summary.status = "failed"
    summary.error = f"{type(error).__name__}: {error}"
    summary.seconds = time.perf_counter() - clock
    try:
        warehouse.record_failure(
            audit.finished(datetime.now(UTC), status="failed", error=summary.error)
        )
    except Exception as audit_error:
        error.add_note(f"the failed load could not be audited either: {audit_error}")


def load_kind(settings: Settings, kind: str, **options: Any) -> list[LoadSummary]:
    """Load every table of `kind` (a key of LOADABLE_TABLES), in order: their summaries.

    `options` are `load_table`'s: start, end (exclusive), full_refresh, schema,
    pipeline_run_id, logical_date.
    """
    return [load_table(settings, table, **options) for table in LOADABLE_TABLES[kind]]


def load_daily(settings: Settings, **options: Any) -> LoadSummary:
    """Load processed/historical into `daily_metrics` (`load_table`'s options)."""
    return load_table(settings, DAILY_METRICS, **options)


def load_realtime(settings: Settings, **options: Any) -> LoadSummary:
    """Load processed/realtime (both window sizes) into `realtime_window_metrics`."""
    return load_table(settings, REALTIME_WINDOW_METRICS, **options)


def load_features(settings: Settings, **options: Any) -> list[LoadSummary]:
    """Load processed/features into `daily_features`, then `intraday_features`."""
    return load_kind(settings, "features", **options)


def run_query(
    settings: Settings,
    statement: str,
    schema: str | None = None,
    *,
    write: bool = False,
    allow_multiple: bool = False,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement on the configured warehouse: (column names, rows).

    PostgreSQL: as the read-only role in a read-only transaction, or as the pipeline's
    role with `write`. More than one statement is refused unless `allow_multiple` (then
    the last one's result is returned). A schema that does not exist raises
    SchemaNotFoundError.
    """
    login = "pipeline" if write else "reader"
    with connect_warehouse(settings, schema=schema, login=login) as warehouse:
        return warehouse.query(statement, allow_multiple=allow_multiple, read_only=not write)


def fail_dead_loads(settings: Settings, schema: str | None = None) -> list[DeadLoad]:
    """Mark `failed` the loads left `running` by a killed loader or server (every table).

    For `stocklake status`; a load does the same for its own table before it starts.
    A warehouse without `load_audit` yet has none.
    """
    with connect_warehouse(settings, schema=schema) as warehouse:
        # Before migration 4 no load wrote a `running` row.
        if "loader_pid" not in warehouse.table_columns(LOAD_AUDIT):
            return []
        return warehouse.fail_dead_loads()
