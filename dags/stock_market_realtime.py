"""stock_market_realtime: simulated ticks through the streaming window job to the warehouse.

simulate ticks -> land them -> Structured Streaming (available-now) ->
load window metrics -> summary. Every 15 minutes and on demand. By default
each run simulates ticks whose event times span its own data interval, so
consecutive runs form one continuous feed; the seed comes from the interval
too, so a re-run replays the same ticks (and they count once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from dags.common import DEFAULT_ARGS, completion_summary, settings, summary_of


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
            "interval",
            enum=["interval", "accelerated", "live"],
            description="interval: event times span the run's data interval; "
            "accelerated: replay the interval's trading day; live: stamped now",
        ),
    },
)
def stock_market_realtime() -> None:
    @task(execution_timeout=timedelta(minutes=15))
    def simulate_ticks(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        """Send simulated ticks to Kafka; seed and event times come from the data interval."""
        from ingestion.market_hours import most_recent_weekday
        from ingestion.producer import plan_interval, plan_realtime, produce_realtime
        from ingestion.yahoo import DEFAULT_SYMBOLS

        symbols = params["symbols"] or list(DEFAULT_SYMBOLS)
        rate, seconds = params["rate"], params["duration_seconds"]
        seed = int(data_interval_end.timestamp()) % 2**31
        if params["clock"] == "interval":
            # Each run covers its own interval: consecutive runs are one continuous feed.
            plan = plan_interval(
                symbols,
                start=data_interval_start,
                end=data_interval_end,
                count=rate * seconds,
                rate=rate,
                seed=seed,
            )
        else:
            accelerated = params["clock"] == "accelerated"
            plan = plan_realtime(
                symbols,
                rate=rate,
                duration=float(seconds),
                seed=seed,
                clock=params["clock"],
                # The interval's trading day: a re-run replays the same session.
                session_date=most_recent_weekday(data_interval_end.date()) if accelerated else None,
            )
        return summary_of(produce_realtime(settings(), plan))

    @task(execution_timeout=timedelta(minutes=15))
    def land_ticks() -> dict:
        """Land everything waiting on the tick topic (bounded: stops when idle)."""
        from streaming.landing import land

        return summary_of(land(settings(), "realtime", until_idle=5.0, handle_signals=False))

    @task(execution_timeout=timedelta(minutes=30))
    def window_metrics() -> dict:
        """15-minute and 1-hour sliding windows over what landed (trigger: available now)."""
        from spark_jobs.stream import run_stream

        return summary_of(run_stream(settings(), available_now=True))

    @task(execution_timeout=timedelta(minutes=15))
    def load_window_metrics(run_id=None, logical_date=None) -> dict:
        """MERGE new window partitions into realtime_window_metrics (incremental, audited
        with this run)."""
        from loaders.load import load_realtime

        return summary_of(
            load_realtime(settings(), pipeline_run_id=run_id, logical_date=logical_date)
        )

    loaded = load_window_metrics()
    summary = completion_summary(
        "stock_market_realtime",
        {
            "simulate": "simulate_ticks",
            "land": "land_ticks",
            "windows": "window_metrics",
            "load": "load_window_metrics",
        },
    )
    simulate_ticks() >> land_ticks() >> window_metrics() >> loaded >> summary


stock_market_realtime()
