"""The governance tables in the warehouse: run metadata, ingestion fingerprints, data-quality
results and drift alerts (their columns: `stocklake/governance.py`).

Every writer migrates first (idempotent), so the tables exist on any warehouse the
pipeline writes to, on both backends. `tracked_stage` is what the CLI and the DAG tasks
wrap their work in: a `pipeline_runs` row (running, then succeeded or failed) and one
`stage_runs` row with the stage's counts.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from loaders.backends import connect_warehouse
from loaders.tables import (
    DRIFT_ALERTS,
    INGESTION_METADATA,
    PIPELINE_RUNS,
    QUALITY_RESULTS,
    STAGE_RUNS,
)
from loaders.warehouse import Warehouse, process_gone
from stocklake.governance import CheckName, CheckStatus, RunKind, RunStatus
from stocklake.settings import Settings

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


# The warehouses (kind, where, schema) this process has migrated: once is enough.
_MIGRATED: set[tuple[str, str, str]] = set()


@contextmanager
def governance_warehouse(settings: Settings, schema: str | None = None) -> Iterator[Warehouse]:
    """The configured warehouse, migrated (the governance tables exist); the migration
    runs once per process and warehouse."""
    if settings.warehouse_kind == "postgres":
        where, default_schema = settings.postgres_dsn(), settings.warehouse_schema
    else:
        where = f"{settings.snowflake_account}/{settings.snowflake_database}"
        default_schema = settings.snowflake_schema
    key = (str(settings.warehouse_kind), where, schema or default_schema)
    with connect_warehouse(settings, schema=schema) as warehouse:
        if key not in _MIGRATED:
            warehouse.migrate()
            _MIGRATED.add(key)
        yield warehouse


# ----------------------------------------------------------------- runs and stages


def start_run(
    warehouse: Warehouse,
    run_id: str,
    run_kind: RunKind,
    pipeline: str,
    *,
    logical_date: datetime | None = None,
    interval: tuple[datetime | None, datetime | None] = (None, None),
) -> None:
    """A `running` pipeline_runs row, unless the run already has one (a DAG's later task)."""
    row = {
        "run_id": run_id,
        "run_kind": RunKind(run_kind).value,
        "pipeline": pipeline,
        "logical_date": logical_date,
        "interval_start": interval[0],
        "interval_end": interval[1],
        "started_at": _now(),
        "status": RunStatus.RUNNING.value,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    warehouse.write_rows(PIPELINE_RUNS, [row], replace=False)


def finish_run(
    warehouse: Warehouse, run_id: str, status: RunStatus, error: str | None = None
) -> None:
    """Set a run's end, status and error (its start stays as recorded)."""
    found = warehouse.read_rows(PIPELINE_RUNS, {"run_id": run_id})
    if not found:
        raise LookupError(f"no pipeline_runs row for run {run_id!r}")
    row = {**found[0], "finished_at": _now(), "status": RunStatus(status).value, "error": error}
    warehouse.write_rows(PIPELINE_RUNS, [row])


@dataclass
class StageCounts:
    """What one stage did; the stage fills what applies to it (the rest stay empty)."""

    records_in: int | None = None
    records_out: int | None = None
    records_quarantined: int | None = None
    duplicates_dropped: int | None = None
    objects_written: int | None = None
    bytes_written: int | None = None

    def take(self, summary: Mapping[str, Any], **names: str) -> None:
        """Copy counts from a stage's summary: `take(s, records_in="rows_read", ...)`."""
        for count, key in names.items():
            if count not in asdict(self):
                raise ValueError(f"StageCounts has no {count!r}")
            value = summary.get(key)
            if isinstance(value, list | tuple | set | dict):
                value = len(value)
            if value is not None:
                setattr(self, count, int(value))


@dataclass
class StageRecord:
    """One stage_runs row being filled while the stage runs."""

    run_id: str
    stage: str
    started_at: datetime = field(default_factory=_now)
    counts: StageCounts = field(default_factory=StageCounts)

    def row(self, status: RunStatus, error: str | None = None) -> dict[str, Any]:
        finished = _now()
        return {
            "run_id": self.run_id,
            "stage": self.stage,
            "started_at": self.started_at,
            "finished_at": finished if status != RunStatus.RUNNING else None,
            "seconds": round((finished - self.started_at).total_seconds(), 3),
            "status": RunStatus(status).value,
            **asdict(self.counts),
            "error": error,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }


def record_stage(warehouse: Warehouse, record: StageRecord, status: RunStatus, error=None) -> None:
    """Write (or replace, on a retry) the stage's row."""
    warehouse.write_rows(STAGE_RUNS, [record.row(status, error)])


def _safely(action: str, settings: Settings, schema: str | None, work) -> bool:
    """Run `work(warehouse)`; metadata that cannot be written is a warning, not a failure."""
    try:
        with governance_warehouse(settings, schema) as warehouse:
            work(warehouse)
        return True
    except Exception as error:  # the stage's own outcome must not depend on its metadata
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.warning("run metadata not recorded (%s): %s", action, first)
        return False


@contextmanager
def tracked_stage(
    settings: Settings,
    *,
    run_id: str,
    run_kind: RunKind,
    pipeline: str,
    stage: str,
    logical_date: datetime | None = None,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    finishes_run: bool | None = None,
    schema: str | None = None,
) -> Iterator[StageRecord]:
    """Record a stage of a run around the work in the `with` block.

    Writes the run's row (if new) and a `running` stage row first, so a run killed
    mid-stage shows as running and then, once `fail_dead_runs` sees its process gone, as
    failed. On success the stage is `succeeded`; an exception marks the stage and the
    run `failed` (with its first line) and propagates. A CLI run (one stage) is finished
    with its stage; a DAG run is finished by its last task (`finishes_run=True`).
    """
    record = StageRecord(run_id=run_id, stage=stage)
    finishes = run_kind == RunKind.CLI if finishes_run is None else finishes_run

    def begin(warehouse: Warehouse) -> None:
        start_run(
            warehouse, run_id, run_kind, pipeline, logical_date=logical_date, interval=interval
        )
        record_stage(warehouse, record, RunStatus.RUNNING)

    _safely("start", settings, schema, begin)
    try:
        yield record
    except BaseException as error:
        message = (str(error).strip().splitlines() or [type(error).__name__])[0][:2000]

        def failed(warehouse: Warehouse) -> None:
            record_stage(warehouse, record, RunStatus.FAILED, message)
            finish_run(warehouse, run_id, RunStatus.FAILED, f"{stage}: {message}")

        _safely("failure", settings, schema, failed)
        raise

    def succeeded(warehouse: Warehouse) -> None:
        record_stage(warehouse, record, RunStatus.SUCCEEDED)
        if finishes:
            finish_run(warehouse, run_id, RunStatus.SUCCEEDED)

    _safely("success", settings, schema, succeeded)


def fail_dead_runs(warehouse: Warehouse) -> list[str]:
    """Mark `failed` the runs and stages left `running` by a process that is gone here."""
    failed = []
    for stage in warehouse.read_rows(STAGE_RUNS, {"status": RunStatus.RUNNING.value}):
        gone = process_gone(stage["host"], stage["pid"], what="process")
        if gone is None:
            continue  # still running, or on another host: cannot tell
        cause = f"{gone}: killed or crashed"
        warehouse.write_rows(
            STAGE_RUNS, [{**stage, "status": RunStatus.FAILED.value, "error": cause}]
        )
        run = warehouse.read_rows(PIPELINE_RUNS, {"run_id": stage["run_id"]})
        if run and run[0]["status"] == RunStatus.RUNNING.value:
            error = f"{stage['stage']}: {cause}"
            warehouse.write_rows(
                PIPELINE_RUNS, [{**run[0], "status": RunStatus.FAILED.value, "error": error}]
            )
        failed.append(stage["run_id"])
    return failed


def latest_runs(warehouse: Warehouse, limit: int = 20) -> list[dict[str, Any]]:
    """The newest pipeline runs, newest first (dead ones marked failed first)."""
    fail_dead_runs(warehouse)
    return warehouse.read_rows(PIPELINE_RUNS, {}, order_by=("started_at",), limit=limit)


def run_details(warehouse: Warehouse, run_id: str) -> dict[str, Any] | None:
    """One run with its stages (in start order), its quality results and drift alerts."""
    fail_dead_runs(warehouse)
    found = warehouse.read_rows(PIPELINE_RUNS, {"run_id": run_id})
    if not found:
        return None
    stages = warehouse.read_rows(STAGE_RUNS, {"run_id": run_id}, order_by=("started_at",))
    return {
        "run": found[0],
        "stages": list(reversed(stages)),
        "quality": warehouse.read_rows(QUALITY_RESULTS, {"run_id": run_id}),
        "drift": warehouse.read_rows(DRIFT_ALERTS, {"run_id": run_id}),
    }


# ----------------------------------------------------------------- quality and drift


def record_quality(
    settings: Settings, rows: Sequence[Mapping[str, Any]], schema: str | None = None
) -> None:
    """Store check results (QUALITY_RESULTS_COLUMNS rows); a re-run replaces its own rows."""
    with governance_warehouse(settings, schema) as warehouse:
        warehouse.write_rows(QUALITY_RESULTS, rows)


def previous_checksum(
    settings: Settings,
    dataset: str,
    partition_name: str,
    schema: str | None = None,
    *,
    before_run: str | None = None,
) -> str | None:
    """The last checksum stored for a partition by a run other than `before_run`."""
    where = {"dataset": dataset, "partition_name": partition_name}
    with governance_warehouse(settings, schema) as warehouse:
        rows = warehouse.read_rows(
            QUALITY_RESULTS,
            {**where, "check_name": CheckName.CHECKSUM.value},
            order_by=("checked_at",),
        )
    for row in rows:
        if row["run_id"] != before_run:
            return row["observed"]
    return None


def quality_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many checks passed, warned and failed (pure)."""
    counts = {status.value: 0 for status in CheckStatus}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def record_drift(
    settings: Settings, rows: Sequence[Mapping[str, Any]], schema: str | None = None
) -> None:
    """Store drift alerts (DRIFT_ALERTS_COLUMNS rows)."""
    with governance_warehouse(settings, schema) as warehouse:
        warehouse.write_rows(DRIFT_ALERTS, rows)


# ----------------------------------------------------------------- ingestion fingerprints


def record_ingestion(settings: Settings, row: Mapping[str, Any], schema: str | None = None) -> None:
    """Store one sent dataset (INGESTION_METADATA_COLUMNS)."""
    with governance_warehouse(settings, schema) as warehouse:
        warehouse.write_rows(INGESTION_METADATA, [row])


def ingestions_of(
    settings: Settings, fingerprint: str, schema: str | None = None
) -> list[dict[str, Any]]:
    """Every earlier sending of the dataset with this fingerprint, newest first."""
    with governance_warehouse(settings, schema) as warehouse:
        return warehouse.read_rows(
            INGESTION_METADATA, {"fingerprint": fingerprint}, order_by=("sent_at",)
        )
