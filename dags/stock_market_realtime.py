"""stock_market_realtime: simulated ticks through the streaming window job to the warehouse.

simulate ticks -> land them -> check the raw ticks -> Structured Streaming (available-now)
-> check the window metrics -> load them -> summary. The checks run the quality suite on
what the task before wrote (results in quality_results, a table in the log; a check failed
at severity fail stops the run before the load). Every task is a stage of the DAG run
(`dags.common.tracked`) and declares what it reads and writes as Assets (`dags.lineage`).

Every 15 minutes and on demand. By default each run simulates ticks whose event times span
its own data interval, so consecutive runs form one continuous feed; the seed comes from
the interval too, so a re-run replays the same ticks (and they count once). Wiring only:
the plan comes from `ingestion.realtime_plan.plan_scheduled_run`, and the tasks pass their
summaries as TaskFlow XComArgs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from dags.common import DEFAULT_ARGS, completion_summary, settings, summary_of, tracked
from dags.lineage import lake_folder, table, topic
from stocklake import lake
from stocklake.governance import Dataset
from stocklake.schemas import Clock, RecordKind

TICKS = topic(RecordKind.REALTIME)
RAW = lake_folder(lake.RAW_REALTIME)
QUARANTINE = lake_folder(f"{lake.QUARANTINE}/{RecordKind.REALTIME.value}")
WINDOWS = lake_folder(lake.PROCESSED_REALTIME)
QUALITY = table("quality_results")
DATE = r"date=(\d{4}-\d{2}-\d{2})"  # a processed partition's date


@dag(
    dag_id="stock_market_realtime",
    description="Simulated ticks -> Kafka -> raw zone -> 15m/1h windows -> warehouse",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=datetime(2019, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["stocklake", "realtime"],
    params={
        "symbols": Param([], type="array", description="Symbols; empty means the default set"),
        "duration_seconds": Param(60, type="integer", minimum=1, description="Wall seconds"),
        "rate": Param(100, type="integer", minimum=1, description="Ticks per wall second"),
        "clock": Param(
            Clock.INTERVAL.value,
            enum=[clock.value for clock in Clock],
            description="interval: event times span the run's data interval; "
            "accelerated: replay the interval's trading day; live: stamped now",
        ),
    },
)
def stock_market_realtime() -> None:
    # Long by design (about 80 lines): the tasks' definitions, a few lines of wiring each.
    @task(execution_timeout=timedelta(minutes=15), outlets=[TICKS])
    @tracked("produce")
    def simulate_ticks(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        """Send simulated ticks to Kafka; seed and event times come from the data interval."""
        from ingestion.producer import produce_realtime
        from ingestion.realtime_plan import plan_scheduled_run

        plan = plan_scheduled_run(
            params["symbols"],
            clock=params["clock"],
            rate=params["rate"],
            seconds=params["duration_seconds"],
            start=data_interval_start,
            end=data_interval_end,
        )
        return summary_of(produce_realtime(settings(), plan))

    @task(execution_timeout=timedelta(minutes=15), inlets=[TICKS], outlets=[RAW, QUARANTINE])
    @tracked("land")
    def land_ticks() -> dict:
        """Land everything waiting on the tick topic (bounded: stops when idle)."""
        from streaming.landing import land

        return summary_of(
            land(settings(), RecordKind.REALTIME, until_idle=5.0, handle_signals=False)
        )

    @task(execution_timeout=timedelta(minutes=10), inlets=[RAW], outlets=[QUALITY])
    @tracked()
    def check_raw_ticks(per_date: dict[str, int], run_id=None) -> dict:
        """The quality suite on the raw ticks of each date the simulator sent ticks for."""
        from dags.quality_checks import check_lake

        return check_lake([Dataset.RAW_TICKS], sorted(per_date), run_id)

    @task(execution_timeout=timedelta(minutes=30), inlets=[RAW], outlets=[WINDOWS])
    @tracked("spark stream")
    def window_metrics() -> dict:
        """15-minute and 1-hour sliding windows over what landed (trigger: available now)."""
        from spark_jobs.stream import run_stream

        return summary_of(run_stream(settings(), available_now=True))

    @task(execution_timeout=timedelta(minutes=10), inlets=[WINDOWS], outlets=[QUALITY])
    @tracked()
    def check_window_metrics(partitions_written: list[str], run_id=None) -> dict:
        """The quality suite on each date the window job wrote (both window sizes; a date
        whose 1-hour windows have not closed yet is logged, not checked)."""
        import re

        from dags.quality_checks import check_lake

        dates = sorted({m[1] for p in partitions_written if (m := re.search(DATE, p))})
        datasets = [Dataset.WINDOW_METRICS]
        return check_lake(datasets, dates, run_id, missing_ok=datasets)

    @task(
        execution_timeout=timedelta(minutes=15),
        inlets=[WINDOWS],
        outlets=[table("realtime_window_metrics")],
    )
    @tracked("load")
    def load_window_metrics(run_id=None, logical_date=None) -> dict:
        """MERGE new window partitions into realtime_window_metrics (incremental, audited
        with this run)."""
        from loaders.load import load_realtime

        return summary_of(
            load_realtime(settings(), pipeline_run_id=run_id, logical_date=logical_date)
        )

    simulated = simulate_ticks()
    landed = land_ticks()
    raw_checked = check_raw_ticks(simulated["per_date"])
    windows = window_metrics()
    windows_checked = check_window_metrics(windows["partitions_written"])
    loaded = load_window_metrics()
    # Each hop reads what the one before it wrote (Kafka, the lake), not its XCom: order only.
    simulated >> landed >> raw_checked >> windows >> windows_checked >> loaded
    completion_summary(
        "stock_market_realtime",
        {
            "simulate": simulated,
            "land": landed,
            "check raw": raw_checked,
            "windows": windows,
            "check windows": windows_checked,
            "load": loaded,
        },
    )


stock_market_realtime()
