"""Both DAGs end to end with `airflow dags test` (dag.test()) against the local stack.

The runs use their own bucket, topics, warehouse database and Airflow
metadata database, so they never touch a developer's data. Each test gets a new
bucket, topics and warehouse database and runs every date it checks itself, so no
test depends on another having run before it; only Airflow's metadata database
(migrated once, slow) is shared by the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stocklake.s3 import s3_client
from stocklake.schemas import DAILY_METRICS_COLUMNS
from stocklake.settings import Settings, load_settings

pytestmark = [pytest.mark.services, pytest.mark.spark]

ROOT = Path(__file__).resolve().parents[2]
BATCH = "stock_market_batch"
REALTIME = "stock_market_realtime"


def _drop_databases(stack: Settings, *databases: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(stack.postgres_dsn("postgres", "superuser"), autocommit=True) as conn:
        for db in databases:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )


@pytest.fixture(scope="module")
def airflow_metadata(stack: Settings, tmp_path_factory) -> dict[str, str]:
    """Airflow's home and metadata database, shared by the module's runs."""
    from infra.postgres import Postgres

    env = {
        "AIRFLOW_DB": f"dagtest_af_{uuid.uuid4().hex[:8]}",
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("airflow")),
    }
    # Provisioned as `stocklake up` provisions the stack's own: roles, owners, grants.
    Postgres(load_settings(AIRFLOW_DB=env["AIRFLOW_DB"])).provision()
    yield env
    _drop_databases(stack, env["AIRFLOW_DB"])


@pytest.fixture
def isolated(stack: Settings, airflow_metadata: dict[str, str]) -> dict[str, str]:
    """Environment for a private pipeline on the shared services, new for each test."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from infra.postgres import Postgres

    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        **airflow_metadata,
        "LAKE_BUCKET": f"dagtest-{tag}",
        "TOPIC_HISTORICAL": f"dagtest-{tag}.bars",
        "TOPIC_REALTIME": f"dagtest-{tag}.ticks",
        "WAREHOUSE_DB": f"dagtest_wh_{tag}",
        "WAREHOUSE": "postgres",
    }
    s3 = s3_client(stack)
    s3.create_bucket(Bucket=env["LAKE_BUCKET"])
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap_servers)
    admin.create_topics(
        [
            NewTopic(env["TOPIC_HISTORICAL"], num_partitions=3, replication_factor=1),
            NewTopic(env["TOPIC_REALTIME"], num_partitions=3, replication_factor=1),
        ]
    )
    private = load_settings(WAREHOUSE_DB=env["WAREHOUSE_DB"], AIRFLOW_DB=env["AIRFLOW_DB"])
    Postgres(private).provision()
    try:
        yield env
    finally:
        admin.delete_topics([env["TOPIC_HISTORICAL"], env["TOPIC_REALTIME"]])
        admin.close()
        bucket = env["LAKE_BUCKET"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
        _drop_databases(stack, env["WAREHOUSE_DB"])


def run_dag(env: dict[str, str], dag_id: str, logical_date: str, conf: dict | None = None):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "airflow", "dags", "test", dag_id, logical_date]
        + (["--conf", json.dumps(conf)] if conf else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, task_states(env, dag_id)


def task_states(env: dict[str, str], dag_id: str) -> dict[str, str | None]:
    """Task states of the DAG's latest run, from the Airflow metadata DB."""
    import psycopg

    settings = load_settings(AIRFLOW_DB=env["AIRFLOW_DB"])
    with psycopg.connect(settings.postgres_dsn(env["AIRFLOW_DB"], "airflow")) as conn:
        rows = conn.execute(
            """SELECT ti.task_id, ti.state FROM task_instance ti
               WHERE ti.dag_id = %s AND ti.run_id = (
                   SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1)""",
            (dag_id, dag_id),
        ).fetchall()
    return dict(rows)


def latest_run_id(env: dict[str, str], dag_id: str) -> str:
    import psycopg

    settings = load_settings(AIRFLOW_DB=env["AIRFLOW_DB"])
    with psycopg.connect(settings.postgres_dsn(env["AIRFLOW_DB"], "airflow")) as conn:
        ((run_id,),) = conn.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchall()
    return run_id


def warehouse(env: dict[str, str], statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    settings = load_settings(WAREHOUSE_DB=env["WAREHOUSE_DB"])
    with psycopg.connect(settings.postgres_dsn()) as conn:
        return conn.execute(statement, params).fetchall()


METRIC_COLUMNS = ", ".join(name for name, _ in DAILY_METRICS_COLUMNS)


def daily_checksum(env: dict[str, str], day: str) -> tuple[int, str]:
    """Row count and an md5 over every metric column of one trading date's rows."""
    ((count, digest),) = warehouse(
        env,
        f"""SELECT COUNT(*), md5(string_agg(t::text, '|' ORDER BY symbol))
            FROM (SELECT {METRIC_COLUMNS} FROM daily_metrics WHERE trade_date = %s) t""",
        (day,),
    )
    return count, digest


def _explain(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


def test_failing_stage_stops_the_run_and_a_rerun_completes(isolated: dict[str, str]) -> None:
    dead_s3 = {**isolated, "S3_ENDPOINT_URL": "http://127.0.0.1:9", "AIRFLOW_TASK_RETRIES": "0"}
    result, states = run_dag(dead_s3, BATCH, "2020-12-30T22:00:00+00:00")
    assert states["produce_bars"] == "success"
    assert states["land_bars"] == "failed", states
    downstream = ("wait_for_raw_partition", "daily_metrics", "load_warehouse", "data_checks")
    assert all(states[task] == "upstream_failed" for task in downstream), states
    log = result.stdout + result.stderr
    assert "stocklake stage 'land_bars' failed" in log
    assert "127.0.0.1:9" in log, "the failure must name the unreachable endpoint"
    # The failed task marked its stage and the run failed; nothing after it ran a stage.
    failed_run = latest_run_id(isolated, BATCH)
    ((status, error),) = warehouse(
        isolated, "SELECT status, error FROM pipeline_runs WHERE run_id = %s", (failed_run,)
    )
    assert status == "failed" and error.startswith("land_bars: "), error
    stages = dict(
        warehouse(isolated, "SELECT stage, status FROM stage_runs WHERE run_id = %s", (failed_run,))
    )
    assert stages == {"produce_bars": "succeeded", "land_bars": "failed"}, stages

    # The cause fixed (the real endpoint), the same run date completes.
    result, states = run_dag(isolated, BATCH, "2020-12-30T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    count, _ = daily_checksum(isolated, "2020-12-30")
    assert count == 7  # the seven bundled symbols traded on 2020-12-30
    ((close,),) = warehouse(
        isolated,
        "SELECT daily_close FROM daily_metrics WHERE symbol = 'AAPL' AND trade_date = %s",
        ("2020-12-30",),
    )
    assert close == pytest.approx(133.72, abs=0.005)


def test_rerun_of_a_date_leaves_the_warehouse_identical(isolated: dict[str, str]) -> None:
    result, states = run_dag(isolated, BATCH, "2020-12-30T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    before = daily_checksum(isolated, "2020-12-30")
    assert before[0] == 7
    result, states = run_dag(isolated, BATCH, "2020-12-30T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    assert daily_checksum(isolated, "2020-12-30") == before
    ((total,),) = warehouse(isolated, "SELECT COUNT(*) FROM daily_metrics")
    assert total == 7
    # The same bars sent again by a scheduled run: recorded as a re-delivery, not refused.
    sendings = warehouse(
        isolated, "SELECT delivery, records FROM ingestion_metadata ORDER BY sent_at"
    )
    assert sendings[-1] == ("redelivery", 7)
    assert {delivery for delivery, _ in sendings} <= {"first", "redelivery"}


def test_another_date_adds_only_that_date(isolated: dict[str, str]) -> None:
    result, states = run_dag(isolated, BATCH, "2020-12-30T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    before = daily_checksum(isolated, "2020-12-30")
    result, states = run_dag(isolated, BATCH, "2020-12-31T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    assert daily_checksum(isolated, "2020-12-30") == before
    rows = warehouse(
        isolated, "SELECT trade_date::text, COUNT(*) FROM daily_metrics GROUP BY 1 ORDER BY 1"
    )
    assert rows == [("2020-12-30", 7), ("2020-12-31", 7)]
    # The previous day is in the lake, so the return is filled in.
    ((return_pct,),) = warehouse(
        isolated,
        "SELECT return_pct FROM daily_metrics WHERE symbol = 'AAPL' AND trade_date = %s",
        ("2020-12-31",),
    )
    assert return_pct == pytest.approx((132.69 / 133.72 - 1) * 100, abs=0.01)
    # The load is audited with the DAG run that did it, and that run's logical date.
    ((run_id, logical_date),) = warehouse(
        isolated,
        "SELECT pipeline_run_id, logical_date FROM load_audit "
        "WHERE table_name = 'daily_metrics' ORDER BY started_at DESC LIMIT 1",
    )
    assert run_id == latest_run_id(isolated, BATCH)
    assert logical_date == datetime(2020, 12, 31, 22, tzinfo=UTC)
    assert_run_metadata(isolated, run_id)


def assert_run_metadata(env: dict[str, str], run_id: str) -> None:
    """The DAG run's pipeline_runs row, a stage_runs row per task with its counts, and the
    quality suite's results (none failed) for the run's trading date."""
    ((kind, pipeline, status, start, end),) = warehouse(
        env,
        "SELECT run_kind, pipeline, status, interval_start, interval_end FROM pipeline_runs "
        "WHERE run_id = %s",
        (run_id,),
    )
    assert (kind, pipeline, status) == ("dag", BATCH, "succeeded")
    assert (start, end) == (
        datetime(2020, 12, 30, 22, tzinfo=UTC),
        datetime(2020, 12, 31, 22, tzinfo=UTC),
    )
    stages = {
        stage: (status, records_in, records_out)
        for stage, status, records_in, records_out in warehouse(
            env,
            "SELECT stage, status, records_in, records_out FROM stage_runs WHERE run_id = %s",
            (run_id,),
        )
    }
    # Every task but the sensor (it only waits) is a stage; the seven symbols' bars.
    assert set(stages) == set(task_states(env, BATCH)) - {"wait_for_raw_partition"}, stages
    assert {status for status, _, _ in stages.values()} == {"succeeded"}, stages
    assert stages["produce_bars"][2] == 7 and stages["land_bars"][1:] == (7, 7), stages
    assert stages["daily_metrics"][2] == 7 and stages["load_warehouse"][1] == 7, stages
    results = warehouse(
        env,
        "SELECT dataset, status, COUNT(*) FROM quality_results WHERE run_id = %s GROUP BY 1, 2",
        (run_id,),
    )
    datasets = {dataset for dataset, _, _ in results}
    assert {"raw_bars", "daily_metrics", "daily_features"} <= datasets, results
    assert "failed" not in {status for _, status, _ in results}, results


def test_a_check_failed_at_severity_fail_stops_the_run_before_any_load(
    stack: Settings, isolated: dict[str, str]
) -> None:
    """A raw bar with low above open (the producer's validation would refuse it: it is put
    in the raw partition directly) fails check_raw_bars; nothing after it runs or loads."""
    from stocklake import lake
    from stocklake.schemas import HistoricalBar

    good = HistoricalBar(
        symbol="ZZZZ", ts="2020-12-30T00:00:00Z", interval="1d", open=10, high=12, low=9,
        close=11, volume=100, source="csv", ingested_at="2020-12-31T00:00:00Z",
    )  # fmt: skip
    bad = {**json.loads(good.to_json()), "low": 10.5}
    prefix = lake.raw_historical_prefix(datetime(2020, 12, 30).date())
    name = lake.OffsetRange(isolated["TOPIC_HISTORICAL"], 9, 0, 0).object_name()
    s3_client(stack).put_object(
        Bucket=isolated["LAKE_BUCKET"], Key=prefix + name, Body=json.dumps(bad).encode() + b"\n"
    )
    no_retries = {**isolated, "AIRFLOW_TASK_RETRIES": "0"}
    result, states = run_dag(no_retries, BATCH, "2020-12-30T22:00:00+00:00")
    assert states["check_raw_bars"] == "failed", _explain(result)
    after = ("daily_metrics", "load_warehouse", "load_features", "data_checks")
    assert all(states[task] == "upstream_failed" for task in after), states
    assert states["completion_summary"] == "upstream_failed", states
    log = result.stdout + result.stderr
    assert f"raw_bars {prefix} ohlc_consistent: observed 1, expected 0" in log, _explain(result)
    ((loaded,),) = warehouse(isolated, "SELECT COUNT(*) FROM daily_metrics")
    assert loaded == 0
    run_id = latest_run_id(isolated, BATCH)
    ((status, error),) = warehouse(
        isolated, "SELECT status, error FROM pipeline_runs WHERE run_id = %s", (run_id,)
    )
    assert status == "failed" and error.startswith("check_raw_bars: quality checks failed")
    ((observed, check_status),) = warehouse(
        isolated,
        "SELECT observed, status FROM quality_results WHERE run_id = %s "
        "AND check_name = 'ohlc_consistent'",
        (run_id,),
    )
    assert (observed, check_status) == ("1", "failed")


def test_realtime_dag_produces_window_rows(isolated: dict[str, str]) -> None:
    result, states = run_dag(
        isolated,
        REALTIME,
        "2020-12-31T21:00:00+00:00",
        # The interval's whole trading day, so 15-minute windows close within one run.
        {"duration_seconds": 15, "rate": 200, "clock": "accelerated"},
    )
    assert set(states.values()) == {"success"}, _explain(result)
    rows = dict(
        warehouse(
            isolated,
            "SELECT window_size, COUNT(*) FROM realtime_window_metrics GROUP BY window_size",
        )
    )
    assert rows.get("15m", 0) > 0, rows
    ((bad,),) = warehouse(
        isolated,
        "SELECT COUNT(*) FROM realtime_window_metrics "
        "WHERE min_price > avg_price OR max_price < avg_price OR tick_count <= 0",
    )
    assert bad == 0


def test_a_monday_run_covers_only_monday(isolated: dict[str, str]) -> None:
    # Monday's interval [Fri 2020-12-25 22:00, Mon 22:00) holds Saturday and Sunday too:
    # the run must not wait for their raw partitions (none ever exists).
    result, states = run_dag(isolated, BATCH, "2020-12-28T22:00:00+00:00")
    assert set(states.values()) == {"success"}, _explain(result)
    log = result.stdout + result.stderr
    assert "covers 2020-12-28; skipped 2020-12-26 (Saturday), 2020-12-27 (Sunday)" in log
    assert daily_checksum(isolated, "2020-12-28")[0] == 7
    ((weekend,),) = warehouse(
        isolated,
        "SELECT COUNT(*) FROM daily_metrics WHERE trade_date IN ('2020-12-26', '2020-12-27')",
    )
    assert weekend == 0


def test_a_holiday_run_is_skipped_saying_why(isolated: dict[str, str]) -> None:
    result, states = run_dag(isolated, BATCH, "2020-12-25T22:00:00+00:00")
    assert states["produce_bars"] == "skipped", _explain(result)
    assert "failed" not in states.values(), states
    log = result.stdout + result.stderr
    assert (
        "skipping: [2020-12-24 22:00:00+00:00, 2020-12-25 22:00:00+00:00) covers no trading "
        "date; skipped 2020-12-25 (holiday: Christmas): not XNYS trading days"
    ) in log, _explain(result)
    assert "AirflowSkipException is deprecated" not in log
