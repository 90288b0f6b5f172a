"""The DAGs parse fast, without errors, and are wired as the orchestration issue says."""

from __future__ import annotations

import itertools
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from infra.airflow_env import airflow_env
    from stocklake.settings import get_settings

    # Airflow reads its configuration at import: set it before the first import.
    for key, value in airflow_env(get_settings()).items():
        os.environ.setdefault(key, value)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"stock_market_batch", "stock_market_realtime"}


@pytest.mark.parametrize("dag_file", ["stock_market_batch.py", "stock_market_realtime.py"])
def test_each_dag_parses_in_under_a_second(dagbag, dag_file: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(ROOT / "dags" / dag_file))
    elapsed = time.perf_counter() - started
    assert bag.import_errors == {}
    assert elapsed < 1.0, f"{dag_file} took {elapsed:.2f} s to parse"


def _assert_chain(dag, expected: list[str]) -> None:
    """Every task is in the chain, each runs after the one before it, none before."""
    assert sorted(dag.task_ids) == sorted(expected)
    for before, after in itertools.pairwise(expected):
        assert after in dag.get_task(before).downstream_task_ids, (before, after)
    for position, task_id in enumerate(expected):
        upstream = dag.get_task(task_id).get_flat_relative_ids(upstream=True)
        assert upstream == set(expected[:position]), task_id


def test_batch_dag_order_schedule_and_params(dagbag) -> None:
    dag = dagbag.dags["stock_market_batch"]
    _assert_chain(
        dag,
        [
            "produce_bars",
            "land_bars",
            "wait_for_raw_partition",
            "daily_metrics",
            "check_processed_partition",
            "load_warehouse",
            "data_checks",
            "completion_summary",
        ],
    )
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params) == {"source", "symbols", "interval"}
    assert dag.get_task("wait_for_raw_partition").task_type == "S3KeySensor"
    # Runs at 22:00 UTC on weekdays, over the previous 24 hours.
    assert dag.timetable.summary == "0 22 * * 1-5"


def test_realtime_dag_order_and_schedule(dagbag) -> None:
    dag = dagbag.dags["stock_market_realtime"]
    _assert_chain(
        dag,
        [
            "simulate_ticks",
            "land_ticks",
            "window_metrics",
            "load_window_metrics",
            "completion_summary",
        ],
    )
    assert dag.timetable.summary == "*/15 * * * *"
    assert dag.max_active_runs == 1


@pytest.mark.parametrize("dag_id", ["stock_market_batch", "stock_market_realtime"])
def test_every_task_retries_with_backoff_and_has_a_timeout(dagbag, dag_id: str) -> None:
    from stocklake.settings import get_settings

    for task in dagbag.dags[dag_id].tasks:
        assert task.retries == get_settings().airflow_task_retries, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.execution_timeout <= timedelta(minutes=30), task.task_id
        assert task.on_failure_callback, task.task_id


def test_failure_callback_names_the_stage_and_cause(caplog) -> None:
    from types import SimpleNamespace

    from dags.common import on_task_failure

    context = {
        "task_instance": SimpleNamespace(task_id="land_bars", try_number=3),
        "dag_run": SimpleNamespace(run_id="manual__x"),
        "exception": ConnectionError("S3 endpoint http://127.0.0.1:1 unreachable"),
    }
    with caplog.at_level("ERROR", logger="stocklake.dags"):
        on_task_failure(context)
    assert "'land_bars' failed" in caplog.text
    assert "ConnectionError" in caplog.text and "unreachable" in caplog.text


def test_completion_summary_is_for_people(caplog) -> None:
    from dags.common import log_summary

    hops = {
        "land": {"records_in": 0, "landed": 0, "seconds": 0.08375137199993787,
                 "records_per_second": 0.0},
        "produce": {"records": 4, "seconds": 5.0, "records_per_second": 0.8},
        "windows": {"input_rows": 9, "late_rows_dropped": 2, "seconds": 12.3456, "queries": []},
        "load": {"rows_inserted": 0, "rows_unchanged": 7},
    }  # fmt: skip
    with caplog.at_level("INFO", logger="stocklake.dags"):
        log_summary("stock_market_realtime", hops)
    assert "seconds=0.08 s" in caplog.text and "0.0837" not in caplog.text
    assert "landed=0, seconds=0.08 s, records_per_second=-" in caplog.text
    assert "records_per_second=0.8" in caplog.text
    assert "late_rows_dropped=2, seconds=12.35 s" in caplog.text
    assert "rows_unchanged=7" in caplog.text


def test_connections_come_from_settings() -> None:
    import json

    from infra.airflow_env import connections
    from stocklake.settings import load_settings

    conns = connections(
        load_settings(S3_ENDPOINT_URL="http://10.0.0.5:9000", S3_SECRET_KEY="remote-secret")
    )
    s3 = json.loads(conns["AIRFLOW_CONN_STOCKLAKE_S3"])
    assert s3["extra"]["endpoint_url"] == "http://10.0.0.5:9000"
    assert "AIRFLOW_CONN_STOCKLAKE_POSTGRES" in conns
    assert "AIRFLOW_CONN_STOCKLAKE_SNOWFLAKE" not in conns
    cluster = connections(load_settings(SPARK_MASTER="spark://spark-master:7077"))
    spark = json.loads(cluster["AIRFLOW_CONN_STOCKLAKE_SPARK"])
    assert (spark["host"], spark["port"]) == ("spark://spark-master", 7077)


def test_dag_files_hold_no_business_logic() -> None:
    """DAG files import stages only inside tasks, so parsing never loads Spark or pandas."""
    import ast

    for path in (ROOT / "dags").glob("stock_market_*.py"):
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        modules = {
            (n.module if isinstance(n, ast.ImportFrom) else n.names[0].name).split(".")[0]
            for n in top_level
        }
        assert modules <= {"__future__", "datetime", "airflow", "dags"}, (path.name, modules)
