"""The DAGs parse fast, without errors, and are wired as the orchestration issue says."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
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
    assert set(dagbag.dag_ids) == {
        "stock_market_batch",
        "stock_market_realtime",
        "stock_market_training",
    }


@pytest.mark.parametrize("dag_file", ["stock_market_batch.py", "stock_market_realtime.py"])
def test_each_dag_file_parses_on_its_own(dagbag, dag_file: str) -> None:
    """How fast it parses is bench/bench_dag_parse.py's figure, not a test threshold."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / dag_file))
    assert bag.import_errors == {}
    assert len(bag.dag_ids) == 1


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
            "check_raw_bars",
            "daily_metrics",
            "check_daily_metrics",
            "features",
            "check_features",
            "drift",
            "load_warehouse",
            "load_features",
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
            "check_raw_ticks",
            "window_metrics",
            "check_window_metrics",
            "load_window_metrics",
            "completion_summary",
        ],
    )
    assert dag.timetable.summary == "*/15 * * * *"
    assert dag.max_active_runs == 1


@pytest.mark.parametrize(
    "dag_id", ["stock_market_batch", "stock_market_realtime", "stock_market_training"]
)
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


def test_completion_summary_wants_task_outputs() -> None:
    from dags.common import completion_summary

    with pytest.raises(TypeError, match="hop 'land' needs its task's output"):
        completion_summary("stock_market_batch", {"land": "land_bars"})


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


def test_batch_params_offer_exactly_the_cores_values(dagbag) -> None:
    """The source and interval choices are the core's lists, with the CSV daily default."""
    from stocklake.schemas import HistoricalSource, Interval

    params = dagbag.dags["stock_market_batch"].params
    source, interval = params.get_param("source"), params.get_param("interval")
    assert source.schema["enum"] == [s.value for s in HistoricalSource]
    assert interval.schema["enum"] == [i.value for i in Interval]
    assert (source.value, interval.value) == ("csv", "1d")


def test_batch_tasks_get_the_plan_from_produce_bars(dagbag) -> None:
    """The dates each batch task works on come from produce_bars' output (XComArgs)."""
    dag = dagbag.dags["stock_market_batch"]
    for task_id in (
        "wait_for_raw_partition",
        "check_raw_bars",
        "daily_metrics",
        "drift",
        "load_warehouse",
        "data_checks",
    ):
        assert "produce_bars" in dag.get_task(task_id).upstream_task_ids, task_id


@pytest.mark.parametrize(
    ("dag_id", "no_summary"),
    [("stock_market_batch", {"wait_for_raw_partition"}), ("stock_market_realtime", set())],
)
def test_data_passes_as_xcomargs_only(dagbag, dag_id: str, no_summary: set[str]) -> None:
    """The summary gets every hop's output as an XComArg (so it depends on each), and no
    templated field pulls an XCom by task id."""
    dag = dagbag.dags[dag_id]
    hops = set(dag.task_ids) - no_summary - {"completion_summary"}
    assert dag.get_task("completion_summary").upstream_task_ids == hops
    for task in dag.tasks:
        for field in task.template_fields:
            for text in _strings(getattr(task, field, None)):
                assert "xcom_pull" not in text, (task.task_id, field, text)


def _strings(value) -> list[str]:
    """The plain strings in a (nested) templated field's value; XComArgs are not strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple | set):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


def test_parsing_the_dags_loads_no_stage_spark_or_pandas() -> None:
    """Stage code runs inside tasks only: parsing the DAG folder (what Airflow's
    dag-processor does every few seconds) imports no stage package, Spark or pandas."""
    stages = ["ingestion", "streaming", "spark_jobs", "loaders", "pyspark", "pandas"]
    script = (
        "import json, sys\n"
        "from infra.airflow_env import airflow_env\n"
        "from stocklake.settings import get_settings\n"
        "import os\n"
        "for key, value in airflow_env(get_settings()).items():\n"
        "    os.environ.setdefault(key, value)\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': sorted(bag.dag_ids),\n"
        f"    'loaded': sorted(m for m in {stages!r} if m in sys.modules)}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], result
    assert {"stock_market_batch", "stock_market_realtime"} <= set(result["dags"]), result
    assert result["loaded"] == [], f"parsing the DAGs imported {result['loaded']}"


# ----------------------------------------------------------------- lineage and run metadata

# The tasks that touch no data of their own: the summary (it logs the others' results).
NO_DATA = {"completion_summary"}
# Tasks whose data comes from outside the pipeline (a source of bars, the simulator).
SOURCES = {"produce_bars", "simulate_ticks"}


def _uris(assets) -> set[str]:
    return {asset.uri for asset in assets}


@pytest.mark.parametrize(
    "dag_id", ["stock_market_batch", "stock_market_realtime", "stock_market_training"]
)
def test_every_task_that_reads_or_writes_data_declares_its_assets(dagbag, dag_id: str) -> None:
    """Every task that reads a topic, the lake or the warehouse declares inlets, and every
    one that writes declares outlets (the sensor only waits for what it reads)."""
    for task in dagbag.dags[dag_id].tasks:
        if task.task_id in NO_DATA:
            assert not task.inlets and not task.outlets, task.task_id
            continue
        if task.task_id not in SOURCES:
            assert task.inlets, f"{task.task_id} reads data but declares no inlets"
        if task.task_id != "wait_for_raw_partition":
            assert task.outlets, f"{task.task_id} writes data but declares no outlets"
        for asset in [*task.inlets, *task.outlets]:
            assert asset.uri.split("://")[0] in {"kafka", "s3", "postgres", "snowflake"}, asset


def _lineage(dag) -> dict[str, set[str]]:
    """Asset -> the assets written from it (through any task of the DAG)."""
    edges: dict[str, set[str]] = {}
    for task in dag.tasks:
        for source in _uris(task.inlets):
            edges.setdefault(source, set()).update(_uris(task.outlets))
    return edges


def _reaches(edges: dict[str, set[str]], start: str, end: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == end:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    return False


def test_lineage_runs_from_topic_to_warehouse_table(dagbag) -> None:
    """topic -> raw -> processed -> table, for both DAGs, named from settings and the core."""
    from stocklake import lake
    from stocklake.settings import get_settings

    config = get_settings()
    broker = config.kafka_bootstrap_servers.split(",")[0]
    bucket = f"s3://{config.lake_bucket}"
    warehouse = (
        f"postgres://{config.postgres_host}:{config.postgres_port}/{config.warehouse_db}/"
        f"{config.warehouse_schema}"
    )
    chains = {
        "stock_market_batch": [
            f"kafka://{broker}/{config.topic_historical}",
            f"{bucket}/{lake.RAW_HISTORICAL}",
            f"{bucket}/{lake.PROCESSED_HISTORICAL}",
            f"{bucket}/{lake.PROCESSED_FEATURES_DAILY}",
            f"{warehouse}/daily_features",
        ],
        "stock_market_realtime": [
            f"kafka://{broker}/{config.topic_realtime}",
            f"{bucket}/{lake.RAW_REALTIME}",
            f"{bucket}/{lake.PROCESSED_REALTIME}",
            f"{warehouse}/realtime_window_metrics",
        ],
    }
    for dag_id, chain in chains.items():
        edges = _lineage(dagbag.dags[dag_id])
        for source, target in itertools.pairwise(chain):
            assert target in edges.get(source, set()), (dag_id, source, target, edges)
    batch = _lineage(dagbag.dags["stock_market_batch"])
    assert _reaches(batch, chains["stock_market_batch"][0], f"{warehouse}/daily_metrics")


def test_lineage_tables_are_the_loaders_tables() -> None:
    """dags/lineage.py names the tables without importing the loaders stage: the same
    names as loaders/tables.py, and each loaded table comes from the folder it names."""
    from dags import lineage
    from loaders import tables

    assert set(lineage.TABLES) <= {
        value.name for value in vars(tables).values() if isinstance(value, tables.WarehouseTable)
    }
    assert tables.DAILY_METRICS.name == lineage.DAILY_METRICS
    assert tables.REALTIME_WINDOW_METRICS.name == lineage.REALTIME_WINDOW_METRICS
    assert (tables.DAILY_FEATURES.name, tables.INTRADAY_FEATURES.name) == (
        lineage.DAILY_FEATURES,
        lineage.INTRADAY_FEATURES,
    )


def test_a_snowflake_warehouse_gives_snowflake_table_assets(monkeypatch) -> None:
    from dags import lineage
    from stocklake.settings import load_settings

    snowflake = load_settings(
        WAREHOUSE="snowflake",
        SNOWFLAKE_ACCOUNT="acme-eu1",
        SNOWFLAKE_USER="loader",
        SNOWFLAKE_PASSWORD="secret",
        SNOWFLAKE_DATABASE="MARKET",
        SNOWFLAKE_SCHEMA="LAKE",
    )
    monkeypatch.setattr(lineage, "settings", lambda: snowflake)
    asset = lineage.table("daily_metrics")
    assert asset.uri.startswith("snowflake://") and asset.uri.endswith("/daily_metrics")
    with pytest.raises(ValueError, match="not one of the DAGs' warehouse tables"):
        lineage.table("no_such_table")


def test_the_last_task_finishes_the_run_unless_a_task_failed(dagbag) -> None:
    """completion_summary marks the run succeeded: it runs after skipped hops (a holiday),
    never after a failed one (that task already marked the run failed)."""
    for dag in dagbag.dags.values():
        assert dag.get_task("completion_summary").trigger_rule == "none_failed", dag.dag_id


def test_stage_counts_come_from_each_kind_of_summary() -> None:
    from dags.common import stage_counts

    land = {"records_in": 9, "landed": 7, "quarantined": {"bad_json": 1, "ohlc": 1},
            "objects_written": 3, "bytes_written": 2048, "seconds": 0.4}  # fmt: skip
    assert stage_counts("land", land) == {
        "records_in": 9,
        "records_out": 7,
        "records_quarantined": 2,
        "objects_written": 3,
        "bytes_written": 2048,
    }
    load = {"rows_read": 7, "rows_inserted": 5, "rows_updated": 2, "rows_duplicate": 0}
    assert stage_counts("load", load) == {
        "records_in": 7,
        "records_out": 7,
        "duplicates_dropped": 0,
    }
    daily = {"input_rows": 8, "output_rows": 7, "partitions_written": ["a/", "b/"]}
    assert stage_counts("spark daily", daily)["objects_written"] == 2
    assert stage_counts("train", {"rows": {"train": 60, "test": 20}}) == {"records_in": 80}
    assert stage_counts("none", land) == {}
    assert stage_counts("land", None) == {}
