"""`stocklake spark features`: the rolling features of `spark_jobs/features.py`, read from
and written to the lake.

Daily features read the processed daily metrics (every date before the run's end: the
drawdown looks back to each symbol's first date) and write the run's dates to
processed/features/daily/date=YYYY-MM-DD/. Intraday features read the raw 1-minute bars
of the run's dates (a session needs nothing from another) and write
processed/features/intraday/date=YYYY-MM-DD/. A full refresh recomputes and replaces
every date of both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from spark_jobs.daily import mark_bars, raw_historical_dates, read_raw_bars, usable_bars
from spark_jobs.features import daily_features, intraday_features
from stocklake import lake
from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    DAILY_FEATURES_KEY,
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_KEY,
)
from stocklake.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


# The file contract of each features dataset, by its folder in the lake.
FEATURE_COLUMNS = {
    lake.PROCESSED_FEATURES_DAILY: DAILY_FEATURES_COLUMNS,
    lake.PROCESSED_FEATURES_INTRADAY: INTRADAY_FEATURES_COLUMNS,
}


class FeaturesJobError(RuntimeError):
    """The features job cannot run (no daily metrics yet, a bad range)."""


@dataclass
class FeaturesSummary:
    full_refresh: bool
    start: str | None = None
    end: str | None = None
    daily_rows: int = 0
    daily_dates_written: list[str] = field(default_factory=list)
    history_rows_read: int = 0
    intraday_rows: int = 0
    intraday_dates_written: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def run_features(
    settings: Settings,
    start: date | None = None,
    end: date | None = None,
    *,
    full_refresh: bool = False,
    spark: SparkSession | None = None,
) -> FeaturesSummary:
    """Daily and intraday features for [start, end) (`end` exclusive), or every date."""
    from spark_jobs.session import build_spark

    if full_refresh and (start or end):
        raise ValueError("--full-refresh recomputes every date: give no --date/--start/--end")
    if not full_refresh and (start is None or end is None or end <= start):
        raise ValueError(
            "give --date, or --start before --end (--end is exclusive), or --full-refresh"
        )
    began = time.monotonic()
    summary = FeaturesSummary(
        full_refresh=full_refresh,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
    )
    spark = spark or build_spark(settings, "stocklake-features")
    _daily(spark, settings, summary, start, end)
    _intraday(spark, settings, summary, start, end)
    summary.seconds = round(time.monotonic() - began, 3)
    return summary


def _in_range(frame: DataFrame, start: date | None, end: date | None) -> DataFrame:
    from pyspark.sql import functions as F

    if start is not None:
        frame = frame.where(F.col("trade_date") >= F.lit(start))
    if end is not None:
        frame = frame.where(F.col("trade_date") < F.lit(end))
    return frame


def _daily(
    spark: SparkSession,
    settings: Settings,
    summary: FeaturesSummary,
    start: date | None,
    end: date | None,
) -> None:
    from pyspark import StorageLevel

    metrics = _in_range(_read_daily_metrics(spark, settings), None, end)
    metrics = metrics.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        summary.history_rows_read = metrics.count()
        features = _in_range(daily_features(metrics), start, end)
        written = write_date_partitions(
            features,
            lake.s3a_uri(settings.lake_bucket, lake.PROCESSED_FEATURES_DAILY),
            DAILY_FEATURES_KEY,
            full_refresh=summary.full_refresh,
            settings=settings,
        )
    finally:
        metrics.unpersist()
    summary.daily_dates_written, summary.daily_rows = written


def _read_daily_metrics(spark: SparkSession, settings: Settings) -> DataFrame:
    root = lake.s3a_uri(settings.lake_bucket, lake.PROCESSED_HISTORICAL)
    try:
        return spark.read.parquet(root)
    except Exception as error:  # py4j/pyspark wrap "path does not exist" in several types
        if "PATH_NOT_FOUND" in str(error) or "does not exist" in str(error):
            raise FeaturesJobError(
                f"no daily metrics in {root}: run `stocklake spark daily` first"
            ) from None
        raise


def _intraday(
    spark: SparkSession,
    settings: Settings,
    summary: FeaturesSummary,
    start: date | None,
    end: date | None,
) -> None:
    available = raw_historical_dates(spark, settings)
    uris = [
        uri
        for day, uri in sorted(available.items())
        if (start is None or day >= start) and (end is None or day < end)
    ]
    if not uris:
        return
    bars = _in_range(usable_bars(mark_bars(read_raw_bars(spark, uris))), start, end)
    summary.intraday_dates_written, summary.intraday_rows = write_date_partitions(
        intraday_features(bars),
        lake.s3a_uri(settings.lake_bucket, lake.PROCESSED_FEATURES_INTRADAY),
        INTRADAY_FEATURES_KEY,
        full_refresh=summary.full_refresh,
        settings=settings,
    )


def write_date_partitions(
    frame: DataFrame,
    target: str,
    key: tuple[str, ...],
    *,
    full_refresh: bool,
    settings: Settings | None = None,
) -> tuple[list[str], int]:
    """Write `frame` as one parquet object per trade date under `target`/date=YYYY-MM-DD/
    (sorted by `key`, through `spark_jobs.partition_writer`: no rename commit); only the
    dates present are replaced, or, on a full refresh, the whole folder. The file's
    columns are the contract of the dataset in `target`'s folder. `settings` give the S3
    endpoint and login (default: the process's settings). Returns (dates written, rows
    written)."""
    from spark_jobs.partition_writer import Target, write_partitions

    where = Target.from_uri(target)
    if where.base not in FEATURE_COLUMNS:
        raise ValueError(f"{target} is not a features folder ({', '.join(FEATURE_COLUMNS)})")
    written = write_partitions(
        frame,
        settings or get_settings(),
        where,
        FEATURE_COLUMNS[where.base],
        key,
        full_refresh=full_refresh,
    )
    return written.dates, written.rows
