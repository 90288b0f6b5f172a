"""stock_market_batch: one trading day of bars, from the source to the warehouse.

produce -> land -> wait for the raw partition -> check the raw bars -> Spark daily
metrics -> check them -> Spark rolling features -> check them -> drift -> load the
warehouse (daily metrics, then the features) -> data checks (the warehouse) -> summary.

Each check runs the quality suite on what the task before it wrote, stores the results in
quality_results and logs them as a table; a check failed at severity fail stops the run
there, so nothing downstream is loaded. Every task is a stage of the DAG run in
pipeline_runs / stage_runs (`dags.common.tracked`), and declares the topic, lake folders
and tables it reads and writes as Airflow Assets (`dags.lineage`).

Every date comes from the run's data interval: a run scheduled at 22:00 UTC
on day D covers [D-1 22:00, D 22:00), i.e. date D; Monday's run covers
Saturday to Monday. Only the interval's trading dates (the exchange calendar,
`stocklake.trading_calendar`) are run; the log names the others and why. Wiring
only: the work lives in the stage packages, imported inside the tasks. Data passes
one way, as TaskFlow XComArgs (`produced["dates"]`, a classic operator's `.output`):
Airflow resolves them and orders the tasks by them; no template pulls an XCom.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from dags.common import (
    DEFAULT_ARGS,
    S3_CONN_ID,
    completion_summary,
    lake_bucket,
    log,
    settings,
    skip_run,
    spark_cluster,
    summary_of,
    tracked,
)
from dags.lineage import lake_folder, table, topic
from stocklake import lake
from stocklake.governance import Dataset
from stocklake.schemas import HistoricalSource, Interval, RecordKind

BARS = topic(RecordKind.HISTORICAL)
RAW = lake_folder(lake.RAW_HISTORICAL)
QUARANTINE = lake_folder(f"{lake.QUARANTINE}/{RecordKind.HISTORICAL.value}")
PROCESSED = lake_folder(lake.PROCESSED_HISTORICAL)
FEATURES = [
    lake_folder(lake.PROCESSED_FEATURES_DAILY),
    lake_folder(lake.PROCESSED_FEATURES_INTRADAY),
]
TABLES = [table("daily_metrics"), table("daily_features"), table("intraday_features")]
QUALITY = table("quality_results")
SPARK_DAILY = {"inlets": [RAW], "outlets": [PROCESSED]}
# Daily features from the daily metrics, intraday ones from the raw 1-minute bars.
SPARK_FEATURES = {"inlets": [PROCESSED, RAW], "outlets": FEATURES}


@dag(
    dag_id="stock_market_batch",
    description="Historical bars -> Kafka -> raw zone -> Spark daily metrics -> warehouse",
    schedule=CronDataIntervalTimetable("0 22 * * 1-5", timezone="UTC"),
    start_date=datetime(2019, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["stocklake", "batch"],
    params={
        "source": Param(
            HistoricalSource.CSV.value,
            enum=[source.value for source in HistoricalSource],
            description="Bar source",
        ),
        "symbols": Param(
            [], type="array", description="Symbols; empty means the source's default set"
        ),
        "interval": Param(
            Interval.D1.value,
            enum=[interval.value for interval in Interval],
            description="Bar interval",
        ),
    },
)
def stock_market_batch() -> None:
    # Long by design (about 250 lines): a TaskFlow DAG's body is its tasks' definitions,
    # each a few lines of wiring that call a stage; split up, the DAG would be scattered.
    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=10), outlets=[BARS])
    @tracked("produce")
    def produce_bars(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        """Send the bars of the interval's trading dates to Kafka; skip a run without any.

        Its keys are the run's plan for the tasks after it: `dates` (those sent bars),
        `first_date` and `end_date` (exclusive) and the raw keys the sensor waits for.
        """
        from dags.common import ingest_ledger, run_context
        from ingestion.producer import produce_historical_once
        from stocklake.trading_calendar import interval_dates

        interval = f"[{data_interval_start}, {data_interval_end})"
        run = interval_dates(data_interval_start, data_interval_end)
        if not run.trading:
            skip_run(f"{interval} {run.describe()}")
        log.info("%s %s", interval, run.describe())
        # A scheduled run (a retry, a backfill) sends again what it must: recorded as a
        # re-delivery of the same fingerprint, never refused.
        summary = produce_historical_once(
            settings(),
            ingest_ledger(settings()),
            run_id=run_context()["run_id"],
            scheduled=True,
            source=params["source"],
            symbols=params["symbols"] or None,
            start=run.trading[0],
            end=run.trading[-1] + timedelta(days=1),
            interval=params["interval"],
            # A trading date the source has no bar for is reported below, not an error.
            allow_empty=True,
        )
        dates = [day for day in run.trading if summary.per_date[day]]
        no_bars = ", ".join(str(day) for day in run.trading if day not in dates)
        if not dates:
            skip_run(
                f"{params['source']} has no {params['interval']} bars for trading date(s) "
                f"{no_bars} in {interval}: nothing to do"
            )
        if no_bars:
            log.warning("%s has no %s bars for %s", params["source"], params["interval"], no_bars)
        return {
            "dates": [d.isoformat() for d in dates],
            "first_date": dates[0].isoformat(),
            "last_date": dates[-1].isoformat(),
            "end_date": (dates[-1] + timedelta(days=1)).isoformat(),
            # The sensor waits only for dates that were sent bars.
            "raw_key_patterns": [f"{lake.raw_historical_prefix(d)}*" for d in dates],
            "records": summary.records,
            "bytes": summary.bytes,
            "failed": summary.failed,
            "not_trading": {str(day): why for day, why in run.closed.items()},
        }

    @task(execution_timeout=timedelta(minutes=15), inlets=[BARS], outlets=[RAW, QUARANTINE])
    @tracked("land")
    def land_bars() -> dict:
        """Land everything waiting on the topic (bounded: stops when idle)."""
        from streaming.landing import land

        result = land(settings(), "historical", until_idle=5.0, handle_signals=False)
        return summary_of(result)

    @task(execution_timeout=timedelta(minutes=10), inlets=[RAW], outlets=[QUALITY])
    @tracked()
    def check_raw_bars(dates: list[str], run_id=None) -> dict:
        """The quality suite on the landed raw bars of each date."""
        from dags.quality_checks import check_lake

        return check_lake([Dataset.RAW_BARS], dates, run_id)

    @task(task_id="daily_metrics", execution_timeout=timedelta(minutes=30), **SPARK_DAILY)
    @tracked("spark daily")
    def daily_metrics_local(first_date: str, end_date: str) -> dict:
        """Spark daily metrics for the interval's dates (in-process, local mode)."""
        from datetime import date

        from spark_jobs.daily import run_daily

        result = run_daily(
            settings(), start=date.fromisoformat(first_date), end=date.fromisoformat(end_date)
        )
        return summary_of(result)

    @task(task_id="features", execution_timeout=timedelta(minutes=30), **SPARK_FEATURES)
    @tracked("spark features")
    def features_local(first_date: str, end_date: str) -> dict:
        """Spark rolling features for the interval's dates (in-process, local mode)."""
        from datetime import date

        from spark_jobs.features_job import run_features

        result = run_features(
            settings(), start=date.fromisoformat(first_date), end=date.fromisoformat(end_date)
        )
        return summary_of(result)

    @task(execution_timeout=timedelta(minutes=10), inlets=[PROCESSED, RAW], outlets=[QUALITY])
    @tracked()
    def check_daily_metrics(dates: list[str], run_id=None) -> dict:
        """The quality suite on each date's processed partition (a missing one fails)."""
        from dags.quality_checks import check_lake

        return check_lake([Dataset.DAILY_METRICS], dates, run_id)

    @task(
        execution_timeout=timedelta(minutes=10),
        inlets=[*FEATURES, PROCESSED, RAW],
        outlets=[QUALITY],
    )
    @tracked()
    def check_features(dates: list[str], run_id=None) -> dict:
        """The quality suite on each date's features; intraday ones exist only for dates
        with 1-minute bars (a date without is logged)."""
        from dags.quality_checks import check_lake

        datasets = [Dataset.DAILY_FEATURES, Dataset.INTRADAY_FEATURES]
        return check_lake(datasets, dates, run_id, missing_ok=[Dataset.INTRADAY_FEATURES])

    @task(
        execution_timeout=timedelta(minutes=10),
        inlets=[PROCESSED, lake_folder(lake.RAW_REALTIME)],
        outlets=[table("drift_alerts")],
    )
    @tracked()
    def drift(dates: list[str], run_id=None) -> dict:
        """Each date's z-scores against the trailing window; alerts stored (DRIFT_SEVERITY
        fail: alerts fail the task, before anything is loaded)."""
        from dags.quality_checks import check_drift

        return check_drift(dates, run_id)

    @task(execution_timeout=timedelta(minutes=15), inlets=[PROCESSED], outlets=[TABLES[0]])
    @tracked("load")
    def load_warehouse(first_date: str, end_date: str, run_id=None, logical_date=None) -> dict:
        """MERGE the interval's processed partitions into daily_metrics (audited with this run)."""
        from datetime import date

        from loaders.load import load_daily

        result = load_daily(
            settings(),
            start=date.fromisoformat(first_date),
            end=date.fromisoformat(end_date),
            pipeline_run_id=run_id,
            logical_date=logical_date,
        )
        return summary_of(result)

    @task(execution_timeout=timedelta(minutes=15), inlets=FEATURES, outlets=TABLES[1:])
    @tracked("load")
    def load_features(first_date: str, end_date: str, run_id=None, logical_date=None) -> dict:
        """MERGE the interval's feature partitions into daily_features and intraday_features."""
        from datetime import date

        from loaders.load import load_features as load

        results = load(
            settings(),
            start=date.fromisoformat(first_date),
            end=date.fromisoformat(end_date),
            pipeline_run_id=run_id,
            logical_date=logical_date,
        )
        summary: dict = {
            result.table: f"{result.status}, {result.rows_read} read, {result.rows_inserted} "
            f"inserted, {result.rows_updated} updated, {result.rows_unchanged} unchanged"
            for result in results
        }
        for count in ("rows_read", "rows_inserted", "rows_updated", "rows_rejected"):
            summary[count] = sum(getattr(result, count) for result in results)
        return summary

    @task(
        execution_timeout=timedelta(minutes=10),
        inlets=[*TABLES, PROCESSED, *FEATURES, RAW],
        outlets=[QUALITY],
    )
    @tracked()
    def data_checks(dates: list[str], run_id=None) -> dict:
        """The loaded tables: counts agree hop to hop, keys are unique, OHLC and volume are
        sane; each table's rows of a date equal the processed partition's (count, checksum)."""
        from dags.quality_checks import check_warehouse

        datasets = [Dataset.DAILY_METRICS, Dataset.DAILY_FEATURES, Dataset.INTRADAY_FEATURES]
        return check_warehouse(datasets, dates, run_id)

    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    produced = produce_bars()
    landed = land_bars()
    wait_for_raw = S3KeySensor(
        task_id="wait_for_raw_partition",
        aws_conn_id=S3_CONN_ID,
        bucket_name=lake_bucket(),
        bucket_key=produced["raw_key_patterns"],
        wildcard_match=True,
        poke_interval=5,
        timeout=600,
        mode="poke",
        execution_timeout=timedelta(minutes=11),
        inlets=[RAW],
    )
    if spark_cluster():
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        from dags.common import SPARK_CONN_ID, stocklake_entrypoint

        def spark_submit(job: str) -> SparkSubmitOperator:
            return SparkSubmitOperator(
                task_id=job if job == "features" else "daily_metrics",
                conn_id=SPARK_CONN_ID,
                application=stocklake_entrypoint(),
                application_args=[
                    "spark",
                    job,
                    "--start",
                    produced["first_date"],
                    "--end",  # exclusive: the day after the last date
                    produced["end_date"],
                ],
                execution_timeout=timedelta(minutes=30),
                **(SPARK_FEATURES if job == "features" else SPARK_DAILY),
            )

        daily_metrics = spark_submit("daily").output
        features = spark_submit("features").output
    else:
        daily_metrics = daily_metrics_local(produced["first_date"], produced["end_date"])
        features = features_local(produced["first_date"], produced["end_date"])
    raw_checked = check_raw_bars(produced["dates"])
    metrics_checked = check_daily_metrics(produced["dates"])
    features_checked = check_features(produced["dates"])
    drifted = drift(produced["dates"])
    loaded = load_warehouse(produced["first_date"], produced["end_date"])
    features_loaded = load_features(produced["first_date"], produced["end_date"])
    checks = data_checks(produced["dates"])
    # Stages that pass no data to each other still run in this order: each check before
    # anything reads what it checked.
    produced >> landed >> wait_for_raw >> raw_checked >> daily_metrics >> metrics_checked
    metrics_checked >> features >> features_checked >> drifted >> loaded >> features_loaded
    features_loaded >> checks
    completion_summary(
        "stock_market_batch",
        {
            "produce": produced,
            "land": landed,
            "check raw": raw_checked,
            "spark daily": daily_metrics,
            "check metrics": metrics_checked,
            "spark features": features,
            "check features": features_checked,
            "drift": drifted,
            "load": loaded,
            "load features": features_loaded,
            "check warehouse": checks,
        },
    )


stock_market_batch()
