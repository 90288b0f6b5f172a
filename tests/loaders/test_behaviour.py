"""The loader's behaviour, the same suite on both backends (PostgreSQL and Snowflake)."""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loaders import (
    DAILY_METRICS,
    REALTIME_WINDOW_METRICS,
    LoadError,
    fail_dead_loads,
    load_daily,
    load_realtime,
)
from loaders.backends import connect_warehouse
from loaders.tables import LOAD_AUDIT, MANAGED_TABLES, MIGRATIONS
from stocklake.lake import processed_historical_prefix
from tests.loaders.conftest import Backend, abandoned_load, exited_pid
from tests.loaders.data import (
    TestLake,
    arrow_rows,
    canonical_rows,
    checksum,
    daily_metrics,
    window_metrics,
)

pytestmark = pytest.mark.services


def lake_key(day: date, part: str = "part-00000") -> str:
    return f"{processed_historical_prefix(day)}{part}.parquet"


SOURCE = DAILY_METRICS.source_names


def assert_table_equals(backend: Backend, expected: pa.Table, table=DAILY_METRICS) -> None:
    """Row count and content checksum of the warehouse equal the parquet's, exactly."""
    got = backend.rows(table, table.source_names)
    want = arrow_rows(expected.select(list(table.source_names)))
    assert len(got) == len(want)
    assert checksum(got) == checksum(want), _first_difference(got, want)


def _first_difference(got: list[tuple], want: list[tuple]) -> str:
    for a, b in zip(canonical_rows(got), canonical_rows(want), strict=False):
        if a != b:
            return f"first differing row: warehouse {a} vs parquet {b}"
    return "row sets differ in length"


def with_close(table: pa.Table, symbol: str, delta: float) -> pa.Table:
    """The same rows with one symbol's close moved by `delta`."""
    close = table.column("daily_close")
    hit = pc.equal(table.column("symbol"), symbol)
    moved = pc.if_else(hit, pc.add(close, delta), close)
    return table.set_column(table.schema.get_field_index("daily_close"), "daily_close", moved)


def test_first_load_inserts_everything_and_audits(backend: Backend, lake: TestLake) -> None:
    source = daily_metrics("2020-12-28", "2020-12-31")
    lake.put_daily(source)

    summary = load_daily(backend.settings, schema=backend.schema)

    assert summary.status == "succeeded"
    assert summary.partitions == [f"date=2020-12-{d}" for d in (28, 29, 30, 31)]
    assert (summary.rows_read, summary.rows_staged) == (16, 16)
    assert (summary.rows_inserted, summary.rows_updated, summary.rows_rejected) == (16, 0, 0)
    assert_table_equals(backend, source)
    # AAPL's known close on 2020-12-31 made it through unchanged.
    closes = backend.rows(DAILY_METRICS, ("symbol", "trade_date", "daily_close"))
    assert ("AAPL", date(2020, 12, 31), 132.69000244140625) in closes
    (audit,) = backend.audit(DAILY_METRICS)
    assert audit["status"] == "succeeded" and audit["error"] is None
    assert audit["run_id"] == summary.run_id
    assert (audit["rows_read"], audit["rows_staged"], audit["rows_inserted"]) == (16, 16, 16)
    assert (audit["rows_updated"], audit["rows_rejected"], audit["rows_duplicate"]) == (0, 0, 0)
    assert sorted(json.loads(audit["source_partitions"])) == summary.partitions
    assert audit["finished_at"] >= audit["started_at"]
    # Called from Python without a run: named after who ran it, where and when.
    assert audit["pipeline_run_id"] == summary.pipeline_run_id
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert re.fullmatch(rf"python:.+@.+:{stamp}", audit["pipeline_run_id"])
    assert audit["logical_date"] is None
    took = (audit["finished_at"] - audit["started_at"]).total_seconds()
    assert audit["duration_seconds"] == pytest.approx(took, abs=0.01)
    run_ids = {row[0] for row in backend.rows(DAILY_METRICS, ("run_id",))}
    assert run_ids == {summary.run_id}


def test_audit_links_each_load_to_its_pipeline_run(backend: Backend, lake: TestLake) -> None:
    """An Airflow task passes its DAG run's id and logical date; failed loads keep them too."""
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))
    run_id = "scheduled__2020-12-31T22:00:00+00:00"
    logical = datetime(2020, 12, 31, 22, tzinfo=UTC)

    summary = load_daily(
        backend.settings, schema=backend.schema, pipeline_run_id=run_id, logical_date=logical
    )
    assert (summary.pipeline_run_id, summary.logical_date) == (run_id, logical)
    assert summary.as_dict()["logical_date"] == "2020-12-31T22:00:00+00:00"
    lake.put_daily(DRIFTS["missing column"][0](daily_metrics("2020-12-29", "2020-12-29")))
    with pytest.raises(LoadError):
        load_daily(backend.settings, schema=backend.schema, pipeline_run_id="manual__retry")

    succeeded, failed = backend.audit(DAILY_METRICS)
    assert (succeeded["pipeline_run_id"], succeeded["logical_date"]) == (run_id, logical)
    assert (failed["status"], failed["pipeline_run_id"]) == ("failed", "manual__retry")
    for audit in (succeeded, failed):
        took = (audit["finished_at"] - audit["started_at"]).total_seconds()
        assert audit["duration_seconds"] == pytest.approx(took, abs=0.01)


def test_a_load_whose_process_is_gone_is_marked_failed_by_the_next_load(
    backend: Backend, lake: TestLake
) -> None:
    pid = exited_pid()
    daily_run = abandoned_load(backend, DAILY_METRICS, pid)
    windows_run = abandoned_load(backend, REALTIME_WINDOW_METRICS, pid)
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31"))

    summary = load_daily(backend.settings, schema=backend.schema)

    cause = f"load process gone (pid {pid} on host {socket.gethostname()})"
    assert summary.dead_loads_failed == [f"{daily_run}: {cause}"]
    dead, loaded = backend.audit(DAILY_METRICS)
    assert (dead["run_id"], dead["status"], dead["error"]) == (daily_run, "failed", cause)
    assert (loaded["status"], loaded["loader_pid"]) == ("succeeded", os.getpid())
    # Another table's dead load waits for that table's next load, or `stocklake status`.
    assert [a["status"] for a in backend.audit(REALTIME_WINDOW_METRICS)] == ["running"]
    (found,) = fail_dead_loads(backend.settings, schema=backend.schema)
    assert (found.run_id, found.table_name, found.cause) == (
        windows_run,
        REALTIME_WINDOW_METRICS.name,
        cause,
    )
    assert [a["status"] for a in backend.audit(REALTIME_WINDOW_METRICS)] == ["failed"]


def test_snowflake_takes_a_load_on_another_host_for_dead_only_when_stale(
    backend: Backend,
) -> None:
    if backend.kind == "postgres":
        pytest.skip("PostgreSQL asks the loader's session lock instead (test_killed_load.py)")
    now = datetime.now(UTC)
    recent = abandoned_load(backend, DAILY_METRICS, 1, "elsewhere", now - timedelta(hours=1))
    stale = abandoned_load(backend, DAILY_METRICS, 1, "elsewhere", now - timedelta(hours=7))

    (dead,) = fail_dead_loads(backend.settings, schema=backend.schema)

    assert dead.run_id == stale
    assert dead.cause == "interrupted: still running after 6 h (pid 1 on host elsewhere)"
    statuses = {a["run_id"]: a["status"] for a in backend.audit(DAILY_METRICS)}
    assert statuses == {recent: "running", stale: "failed"}


def test_changed_partition_updates_only_changed_rows(backend: Backend, lake: TestLake) -> None:
    source = daily_metrics("2020-12-28", "2020-12-31")
    lake.put_daily(source)
    first = load_daily(backend.settings, schema=backend.schema)

    # The Spark job re-runs 2020-12-30 and TSLA's numbers change there.
    day = source.filter(pc.equal(source.column("trade_date"), date(2020, 12, 30)))
    lake.put_daily(with_close(day, "TSLA", 1.25))
    second = load_daily(backend.settings, schema=backend.schema)

    assert second.partitions == ["date=2020-12-30"]
    assert (second.rows_staged, second.rows_inserted, second.rows_updated) == (4, 0, 1)
    assert second.rows_unchanged == 3
    expected = pa.concat_tables(
        [
            source.filter(pc.not_equal(source.column("trade_date"), date(2020, 12, 30))),
            with_close(day, "TSLA", 1.25),
        ]
    )
    assert_table_equals(backend, expected)
    run_ids = dict(
        ((symbol, trade_date), run_id)
        for symbol, trade_date, run_id in backend.rows(
            DAILY_METRICS, ("symbol", "trade_date", "run_id")
        )
    )
    assert run_ids[("TSLA", date(2020, 12, 30))] == second.run_id
    assert run_ids[("AAPL", date(2020, 12, 30))] == first.run_id


def test_three_loads_of_the_same_partitions_leave_identical_tables(
    backend: Backend, lake: TestLake
) -> None:
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-31"))
    snapshots, summaries = [], []
    for _ in range(3):
        summaries.append(load_daily(backend.settings, full_refresh=True, schema=backend.schema))
        snapshots.append(canonical_rows(backend.rows(DAILY_METRICS)))

    assert snapshots[0] == snapshots[1] == snapshots[2]
    assert [(s.rows_inserted, s.rows_updated) for s in summaries] == [(16, 0), (0, 0), (0, 0)]
    assert [s.mode for s in summaries] == ["full-refresh"] * 3
    assert [a["status"] for a in backend.audit(DAILY_METRICS)] == ["succeeded"] * 3


def test_incremental_picks_up_new_partitions_only(backend: Backend, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-29"))
    assert load_daily(backend.settings, schema=backend.schema).rows_inserted == 8

    lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))
    second = load_daily(backend.settings, schema=backend.schema)
    assert second.partitions == ["date=2020-12-30", "date=2020-12-31"]
    assert (second.rows_read, second.rows_inserted) == (8, 8)

    third = load_daily(backend.settings, schema=backend.schema)
    assert (third.partitions, third.rows_read, third.rows_inserted) == ([], 0, 0)
    assert third.status == "succeeded"
    assert_table_equals(backend, daily_metrics("2020-12-28", "2020-12-31"))


def test_explicit_dates_load_exactly_those_partitions(backend: Backend, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-21", "2020-12-31"))

    # [start, end) like Airflow's data intervals: the end date is not loaded.
    one = load_daily(
        backend.settings, start=date(2020, 12, 23), end=date(2020, 12, 24), schema=backend.schema
    )
    assert one.partitions == ["date=2020-12-23"] and one.mode == "dates"
    span = load_daily(
        backend.settings, start=date(2020, 12, 28), end=date(2020, 12, 31), schema=backend.schema
    )
    assert span.partitions == ["date=2020-12-28", "date=2020-12-29", "date=2020-12-30"]
    with pytest.raises(ValueError, match="must be after"):
        load_daily(backend.settings, start=date(2020, 12, 28), end=date(2020, 12, 28))
    # Loaded partitions count as loaded for the next incremental run.
    rest = load_daily(backend.settings, schema=backend.schema)
    assert rest.partitions == [
        "date=2020-12-21",
        "date=2020-12-22",
        "date=2020-12-24",
        "date=2020-12-31",
    ]
    assert_table_equals(backend, daily_metrics("2020-12-21", "2020-12-31"))


def test_duplicate_source_keys_keep_the_latest_row(backend: Backend, lake: TestLake) -> None:
    day = daily_metrics("2020-12-31", "2020-12-31")
    # Within one file the later row wins; across files the newer file wins.
    repeated = pa.concat_tables([with_close(day, "AAPL", 100.0), day])
    lake.put_daily(repeated, part="part-00000")
    newer = with_close(day.filter(pc.equal(day.column("symbol"), "TSLA")), "TSLA", 7.0)
    lake.put_daily(newer, part="part-00001")

    summary = load_daily(backend.settings, schema=backend.schema)

    assert (summary.rows_read, summary.rows_duplicate, summary.rows_staged) == (9, 5, 4)
    assert summary.rows_inserted == 4
    expected = pa.concat_tables([day.filter(pc.not_equal(day.column("symbol"), "TSLA")), newer])
    assert_table_equals(backend, expected)
    (audit,) = backend.audit(DAILY_METRICS)
    assert audit["rows_duplicate"] == 5


def test_null_keys_are_rejected_and_counted(backend: Backend, lake: TestLake) -> None:
    good = daily_metrics("2020-12-30", "2020-12-30")
    bad = good.slice(0, 2)
    bad = bad.set_column(0, "symbol", pa.array([None, "AAPL"], pa.string()))
    bad = bad.set_column(1, "trade_date", pa.array([date(2020, 12, 30), None], pa.date32()))
    lake.put(lake_key(date(2020, 12, 30)), pa.concat_tables([good, bad]))

    summary = load_daily(backend.settings, schema=backend.schema)

    assert (summary.rows_read, summary.rows_rejected, summary.rows_staged) == (6, 2, 4)
    assert_table_equals(backend, good)
    (audit,) = backend.audit(DAILY_METRICS)
    assert (audit["rows_rejected"], audit["status"]) == (2, "succeeded")


DRIFTS = {
    "missing column": (lambda t: t.drop_columns(["vwap"]), "column vwap is missing"),
    "unexpected column": (
        lambda t: t.append_column("exchange", pa.array(["XNAS"] * t.num_rows)),
        "unexpected column exchange",
    ),
    "wrong type": (
        lambda t: t.set_column(
            t.schema.get_field_index("daily_volume"),
            "daily_volume",
            t.column("daily_volume").cast(pa.float64()),
        ),
        "column daily_volume has type double, expected long",
    ),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_schema_drift_fails_naming_the_column_and_loads_nothing(
    backend: Backend, lake: TestLake, drift: str
) -> None:
    before = daily_metrics("2020-12-28", "2020-12-28")
    lake.put_daily(before)
    load_daily(backend.settings, schema=backend.schema)
    snapshot = canonical_rows(backend.rows(DAILY_METRICS))

    change, message = DRIFTS[drift]
    lake.put_daily(daily_metrics("2020-12-29", "2020-12-29"))
    (bad_key,) = lake.put_daily(change(daily_metrics("2020-12-30", "2020-12-30")))
    with pytest.raises(LoadError) as failure:
        load_daily(backend.settings, schema=backend.schema)

    assert message in str(failure.value)
    assert bad_key in str(failure.value)
    assert canonical_rows(backend.rows(DAILY_METRICS)) == snapshot
    audits = backend.audit(DAILY_METRICS)
    assert [a["status"] for a in audits] == ["succeeded", "failed"]
    assert message in audits[-1]["error"]
    assert audits[-1]["rows_inserted"] == 0
    # A failed load is retried by the next incremental run once the file is fixed.
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-30"))
    retry = load_daily(backend.settings, schema=backend.schema)
    assert retry.partitions == ["date=2020-12-29", "date=2020-12-30"]


def test_a_truncated_file_fails_naming_it_and_loads_nothing(
    backend: Backend, lake: TestLake
) -> None:
    # Files are fetched in groups and decoded in threads: the broken one, among good ones
    # before and after it, still fails the load by name and nothing is merged.
    keys = lake.put_daily(daily_metrics("2020-12-21", "2020-12-31"))
    broken = keys[len(keys) // 2]
    body = lake.fs.cat(f"{lake.bucket}/{broken}")
    lake.fs.pipe(f"{lake.bucket}/{broken}", body[: len(body) // 2])
    with pytest.raises(LoadError, match="is not a readable parquet file") as failure:
        load_daily(backend.settings, schema=backend.schema)
    assert broken in str(failure.value)
    assert backend.rows(DAILY_METRICS) == []
    assert [a["status"] for a in backend.audit(DAILY_METRICS)] == ["failed"]


def test_failure_inside_the_transaction_leaves_the_table_unchanged(
    backend: Backend, lake: TestLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = daily_metrics("2020-12-28", "2020-12-29")
    lake.put_daily(source)
    load_daily(backend.settings, schema=backend.schema)
    snapshot = canonical_rows(backend.rows(DAILY_METRICS))
    lake.put_daily(with_close(daily_metrics("2020-12-29", "2020-12-31"), "AAPL", 3.0))

    # Fail after the MERGE ran, while writing the success audit row.
    if backend.kind == "postgres":
        from loaders.postgres_backend import PostgresWarehouse as Warehouse
    else:
        from loaders.snowflake_backend import SnowflakeWarehouse as Warehouse
    original = Warehouse._write_audit

    def failing(self, audit):
        if audit.status == "succeeded":
            raise RuntimeError("audit table unavailable")
        return original(self, audit)

    monkeypatch.setattr(Warehouse, "_write_audit", failing)
    with pytest.raises(LoadError, match="audit table unavailable"):
        load_daily(backend.settings, schema=backend.schema)

    assert canonical_rows(backend.rows(DAILY_METRICS)) == snapshot
    audits = backend.audit(DAILY_METRICS)
    assert [a["status"] for a in audits] == ["succeeded", "failed"]
    assert "audit table unavailable" in audits[-1]["error"]
    assert audits[-1]["rows_staged"] == 12


def test_realtime_windows_of_both_sizes_load(backend: Backend, lake: TestLake) -> None:
    windows = window_metrics("2019-05-20")
    keys = lake.put_windows(windows)
    assert len(keys) == 2

    summary = load_realtime(backend.settings, schema=backend.schema)

    assert summary.partitions == ["window=15m/date=2019-05-20", "window=1h/date=2019-05-20"]
    assert summary.rows_inserted == windows.num_rows
    assert_table_equals(backend, windows, REALTIME_WINDOW_METRICS)
    again = load_realtime(backend.settings, full_refresh=True, schema=backend.schema)
    assert (again.rows_inserted, again.rows_updated) == (0, 0)


def test_migration_3_adds_the_run_columns_to_an_older_load_audit(
    backend: Backend, lake: TestLake
) -> None:
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31"))
    before = load_daily(backend.settings, schema=backend.schema)
    # Turn the warehouse back into one migrated up to version 2, holding a load.
    with connect_warehouse(backend.settings, schema=backend.schema) as warehouse:
        added = ("pipeline_run_id", "logical_date", "duration_seconds")
        for column in (*added, "loader_host", "loader_pid"):
            warehouse.query(f"ALTER TABLE load_audit DROP COLUMN {column}")
        warehouse.query("DELETE FROM schema_migrations WHERE version >= 3")

        assert warehouse.migrate() == [m.version for m in MIGRATIONS if m.version >= 3]
        assert list(warehouse.table_columns(LOAD_AUDIT)) == list(LOAD_AUDIT.column_names)
    (old,) = backend.audit(DAILY_METRICS)
    assert (old["run_id"], old["status"]) == (before.run_id, "succeeded")
    assert (old["pipeline_run_id"], old["logical_date"], old["duration_seconds"]) == (None,) * 3
    # The migrated table takes new loads and still knows what was loaded before.
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-30"))
    after = load_daily(backend.settings, schema=backend.schema, pipeline_run_id="manual__1")
    assert after.partitions == ["date=2020-12-30"]
    assert backend.audit(DAILY_METRICS)[-1]["pipeline_run_id"] == "manual__1"


def test_migrations_are_idempotent_and_match_the_definitions(backend: Backend) -> None:
    with connect_warehouse(backend.settings, schema=backend.schema) as warehouse:
        assert warehouse.migrate() == [m.version for m in MIGRATIONS]
        assert warehouse.migrate() == []
        for table in MANAGED_TABLES:
            assert list(warehouse.table_columns(table)) == list(table.column_names)
    if backend.kind == "postgres":
        import psycopg

        with psycopg.connect(backend.settings.postgres_dsn()) as conn:
            options = conn.execute(
                "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = 'daily_metrics'",
                (backend.schema,),
            ).fetchone()
        assert options == (["fillfactor=50"],)
