"""The governance tables on both warehouses: run and stage rows, dead runs, stored checks."""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime

import pytest

from loaders.governance import (
    fail_dead_runs,
    governance_warehouse,
    ingestions_of,
    latest_runs,
    previous_checksum,
    record_ingestion,
    record_quality,
    run_details,
    tracked_stage,
)
from loaders.tables import STAGE_RUNS
from stocklake.governance import CheckName, Delivery, RunKind, RunStatus
from tests.loaders.conftest import Backend, exited_pid


def _runs(backend: Backend) -> dict[str, dict]:
    with governance_warehouse(backend.settings, backend.schema) as warehouse:
        return {row["run_id"]: row for row in latest_runs(warehouse, limit=50)}


def test_a_cli_stage_records_its_run_and_counts(backend: Backend) -> None:
    with tracked_stage(
        backend.settings,
        run_id="cli-1",
        run_kind=RunKind.CLI,
        pipeline="spark daily",
        stage="spark daily",
        schema=backend.schema,
    ) as stage:
        stage.counts.take({"rows": 12, "dates": ["a", "b"]}, records_in="rows", records_out="dates")
    with governance_warehouse(backend.settings, backend.schema) as warehouse:
        details = run_details(warehouse, "cli-1")
    assert details is not None
    assert details["run"]["status"] == RunStatus.SUCCEEDED
    assert details["run"]["finished_at"] >= details["run"]["started_at"]
    [row] = details["stages"]
    assert (row["status"], row["records_in"], row["records_out"]) == ("succeeded", 12, 2)
    assert row["records_quarantined"] is None  # not a count this stage has


def test_a_failed_stage_fails_its_run_and_a_dag_run_stays_open(backend: Backend) -> None:
    common = {"run_kind": RunKind.DAG, "pipeline": "batch", "schema": backend.schema}
    with tracked_stage(backend.settings, run_id="dag-1", stage="produce", **common):
        pass
    assert _runs(backend)["dag-1"]["status"] == RunStatus.RUNNING  # more tasks to come
    with (
        pytest.raises(ValueError, match="bad partition"),
        tracked_stage(backend.settings, run_id="dag-1", stage="land", **common),
    ):
        raise ValueError("bad partition\nsecond line")
    run = _runs(backend)["dag-1"]
    assert run["status"] == RunStatus.FAILED
    assert run["error"] == "land: bad partition"


def test_a_killed_run_is_failed_never_succeeded(backend: Backend) -> None:
    with tracked_stage(
        backend.settings,
        run_id="cli-killed",
        run_kind=RunKind.CLI,
        pipeline="land",
        stage="land",
        schema=backend.schema,
    ):
        with governance_warehouse(backend.settings, backend.schema) as warehouse:
            [row] = warehouse.read_rows(STAGE_RUNS, {"run_id": "cli-killed"})
            # As if a kill -9 had hit it here: its process is gone.
            pid = exited_pid()
            warehouse.write_rows(STAGE_RUNS, [{**row, "pid": pid}])
            assert fail_dead_runs(warehouse) == ["cli-killed"]
        run = _runs(backend)["cli-killed"]
        assert run["status"] == RunStatus.FAILED
        host = socket.gethostname()
        assert run["error"] == f"land: process gone (pid {pid} on host {host}): killed or crashed"
        assert run["host"] == socket.gethostname()


def test_the_last_checksum_of_a_partition_is_the_previous_runs(backend: Backend) -> None:
    def row(run_id: str, checksum: str, at: datetime) -> dict:
        return {
            "run_id": run_id,
            "dataset": "daily_metrics",
            "partition_name": "processed/historical/date=2024-01-02/",
            "check_name": CheckName.CHECKSUM.value,
            "severity": "warn",
            "status": "passed",
            "observed": checksum,
            "checked_at": at,
        }

    first = datetime(2024, 1, 3, tzinfo=UTC)
    record_quality(backend.settings, [row("r1", "aaa", first)], schema=backend.schema)
    record_quality(
        backend.settings, [row("r2", "bbb", first.replace(hour=5))], schema=backend.schema
    )
    args = (backend.settings, "daily_metrics", "processed/historical/date=2024-01-02/")
    assert previous_checksum(*args, schema=backend.schema, before_run="r3") == "bbb"
    assert previous_checksum(*args, schema=backend.schema, before_run="r2") == "aaa"
    assert previous_checksum(backend.settings, "daily_metrics", "x", schema=backend.schema) is None


def test_ingestions_of_a_fingerprint_newest_first(backend: Backend) -> None:
    for run_id, hour, delivery in (("p1", 1, Delivery.FIRST), ("p2", 2, Delivery.FORCED)):
        record_ingestion(
            backend.settings,
            {
                "fingerprint": "f" * 64,
                "run_id": run_id,
                "delivery": delivery.value,
                "source": "csv",
                "symbols": "AAPL,MSFT",
                "bar_interval": "1d",
                "range_start": date(2019, 1, 2),
                "range_end": date(2020, 12, 31),
                "records": 1010,
                "topic": "bars",
                "offsets": '{"0": [0, 1009]}',
                "sent_at": datetime(2024, 1, 1, hour, tzinfo=UTC),
            },
            schema=backend.schema,
        )
    found = ingestions_of(backend.settings, "f" * 64, schema=backend.schema)
    assert [row["run_id"] for row in found] == ["p2", "p1"]
    assert found[1]["range_start"] == date(2019, 1, 2)
    assert found[1]["sent_at"] == datetime(2024, 1, 1, 1, tzinfo=UTC)
