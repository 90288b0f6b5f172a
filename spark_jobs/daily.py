"""Batch job: raw historical bars -> daily metrics per (symbol, trading date).

    raw/historical/year=/month=/day=/*.jsonl  ->  processed/historical/date=YYYY-MM-DD/*.parquet

The transforms (`mark_bars`, `usable_bars`, `daily_metrics`) are pure:
DataFrame in, DataFrame out. `run_daily` does the I/O around them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from spark_jobs.contract import HOLD_REASON, any_null, with_hold_reason
from stocklake import lake
from stocklake.schemas import (
    DAILY_METRICS_COLUMNS,
    EARLIEST_TIME,
    HISTORICAL_BAR_COLUMNS,
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
    Interval,
    spark_ddl,
)
from stocklake.settings import Settings
from stocklake.trading_calendar import split_trading

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row, SparkSession


class OnEmpty(StrEnum):
    """What a requested trading date without bars does to a run (the CLI's choices)."""

    FAIL = "fail"  # the run fails (NoDataError), nothing is written
    SKIP = "skip"  # the other dates are written; the empty ones are listed as skipped


DEFAULT_LOOKBACK_DAYS = 10
# Columns a raw bar cannot do without; a null in any of them means a broken file.
REQUIRED_BAR_COLUMNS = ("symbol", "ts", "interval", "open", "high", "low", "close", "volume")
SOURCE_FILE = "_source_file"
log = logging.getLogger(__name__)
PRICE_COLUMNS = ("open", "high", "low", "close")


class DailyJobError(RuntimeError):
    """The daily job cannot produce a correct result; the message says what and where."""


class NoDataError(DailyJobError):
    def __init__(self, missing: list[date]) -> None:
        self.missing = missing
        days = ", ".join(day.isoformat() for day in missing)
        super().__init__(
            f"no raw historical bars for trading date(s) {days} (looked under "
            f"{lake.RAW_HISTORICAL}/): land them first, or pass --on-empty skip to compute "
            "the other dates"
        )


class CorruptInputError(DailyJobError):
    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(f"corrupt raw file {path}: {detail}")


@dataclass
class DailySummary:
    dates_requested: list[str]
    dates_written: list[str] = field(default_factory=list)
    dates_skipped: list[str] = field(default_factory=list)
    # Requested dates without a session (weekends, exchange holidays), with the reason.
    dates_not_trading: list[str] = field(default_factory=list)
    input_rows: int = 0
    duplicates_dropped: int = 0
    other_interval_bars: int = 0
    # Raw bars outside the contract's bounds (landed before the bounds existed): not used.
    out_of_bounds_bars: int = 0
    output_rows: int = 0
    # "SYMBOL YYYY-MM-DD: reason" of each metrics row not written (an overflow, an inf).
    rows_held_back: list[str] = field(default_factory=list)
    partitions_written: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full_refresh: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def requested_dates(start: date, end: date) -> list[date]:
    """The dates of the half-open range [start, end): `end` itself is not included."""
    if end <= start:
        raise ValueError(
            f"empty date range: --end {end} must be after --start {start} "
            "(--start is inclusive, --end exclusive)"
        )
    return [start + timedelta(days=n) for n in range((end - start).days)]


# ---------------------------------------------------------------- pure transforms


def mark_bars(bars: DataFrame) -> DataFrame:
    """Raw bars with trade_date and three flags, nothing dropped yet (so all can be counted).

    _invalid: a required column is null (a broken line);
    _latest: the newest delivery of its (symbol, interval, ts) (re-deliveries are exact
    repeats or corrections: the latest ingested_at wins, then the highest offset);
    _finest: its interval is the finest present for its (symbol, trade_date) -- mixing a
    daily bar with that day's minute bars would count the volume twice.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # One shuffle and one sort for both flags (and for daily_metrics' grouping after):
    # a (symbol, interval, ts) lies within one (symbol, trade_date), so the day's rows
    # sorted by interval, ts, newest delivery first hold each bar's deliveries in a run,
    # the newest first. (Partitioning by (symbol, interval, ts) cost a second shuffle.)
    day = Window.partitionBy("symbol", "trade_date").orderBy(
        "interval",
        "ts",
        F.col("ingested_at").desc_nulls_last(),
        F.col("_offset").desc_nulls_last(),
        F.col("_partition").desc_nulls_last(),
    )
    whole_day = day.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    bar = F.struct("interval", "ts")
    newest = ~F.lag(bar).over(day).eqNullSafe(bar)  # the first row of its bar's run
    rank = _interval_rank(F.col("interval"))
    usable = ~F.col("_invalid") & ~F.col("_out_of_bounds")
    return (
        bars_with_trade_date(bars)
        .withColumn("_invalid", any_null(REQUIRED_BAR_COLUMNS))
        .withColumn("_out_of_bounds", ~F.col("_invalid") & out_of_bounds_bar())
        .withColumn("_latest", usable & newest)
        .withColumn("_finest", usable & (rank == F.max(F.when(usable, rank)).over(whole_day)))
    )


def usable_bars(marked: DataFrame) -> DataFrame:
    """The bars the metrics are computed from: valid, latest delivery, finest interval."""
    from pyspark.sql import functions as F

    return marked.where(F.col("_latest") & F.col("_finest")).drop(
        "_invalid", "_out_of_bounds", "_latest", "_finest"
    )


def _interval_rank(column: Column) -> Column:
    from pyspark.sql import functions as F

    # Interval runs coarse -> fine, so a higher position is a finer bar.
    ranks = [part for rank, name in enumerate(Interval) for part in (F.lit(name), F.lit(rank))]
    return F.create_map(*ranks)[column]


def daily_metrics(bars: DataFrame, lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> DataFrame:
    """Daily metrics from deduplicated bars of one interval per (symbol, trade_date).

    prev_close is the close of the symbol's previous trading date, if that date is at
    most `lookback_days` calendar days earlier (so one-date runs match full runs).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    typical_price = (F.col("high") + F.col("low") + F.col("close")) / 3
    per_day = bars.groupBy("symbol", "trade_date").agg(
        F.first("interval").alias("interval"),
        # min_by/max_by on ts: deterministic, unlike first()/last() after a shuffle.
        F.min_by("open", "ts").alias("daily_open"),
        F.max("high").alias("daily_high"),
        F.min("low").alias("daily_low"),
        F.max_by("close", "ts").alias("daily_close"),
        # Summed as a decimal: a long sum would wrap past 2^63 silently.
        F.sum(F.col("volume").cast("decimal(38,0)")).alias("daily_volume"),
        F.count(F.lit(1)).cast("int").alias("bar_count"),
        F.sum(typical_price * F.col("volume")).alias("_price_volume"),
        F.min("ts").alias("first_bar_ts"),
        F.max("ts").alias("last_bar_ts"),
    )
    previous = Window.partitionBy("symbol").orderBy("trade_date")
    prev_date = F.lag("trade_date").over(previous)
    prev_close = F.when(
        F.datediff(F.col("trade_date"), prev_date) <= lookback_days,
        F.lag("daily_close").over(previous),
    )
    metrics = (
        per_day.withColumn("prev_close", prev_close)
        .withColumn(
            "daily_change_pct",
            (F.col("daily_close") - F.col("daily_open")) / F.col("daily_open") * 100,
        )
        .withColumn(
            "vwap",
            F.when(F.col("daily_volume") > 0, F.col("_price_volume") / F.col("daily_volume")),
        )
        .withColumn(
            "return_pct",
            (F.col("daily_close") - F.col("prev_close")) / F.col("prev_close") * 100,
        )
        .withColumn(
            "range_pct",
            (F.col("daily_high") - F.col("daily_low")) / F.col("daily_open") * 100,
        )
    )
    return with_hold_reason(metrics, DAILY_METRICS_COLUMNS, "daily_volume")


def out_of_bounds_bar() -> Column:
    """A bar outside the contract's bounds (stocklake.schemas), NaN and inf included."""
    from pyspark.sql import functions as F

    condition = (F.col("volume") < 0) | (F.col("volume") > MAX_VOLUME)
    condition = condition | (F.col("ts") < F.lit(EARLIEST_TIME))
    for name in (*PRICE_COLUMNS, "adj_close"):
        price = F.col(name)
        # Spark orders NaN above every number, so `> MAX_PRICE` holds for NaN and inf.
        condition = condition | (price < MIN_PRICE) | (price > MAX_PRICE)
    return F.coalesce(condition, F.lit(False))


def bars_with_trade_date(bars: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    # Trading date = UTC date of the bar (stocklake.schemas.trade_date_of); session tz is UTC.
    return bars.withColumn("trade_date", F.to_date(F.col("ts")))


# ---------------------------------------------------------------- I/O


def raw_historical_dates(spark: SparkSession, settings: Settings) -> dict[date, str]:
    """Every event date folder under raw/historical, with its s3a URI."""
    from spark_jobs.session import hadoop_fs

    root = lake.s3a_uri(settings.lake_bucket, lake.RAW_HISTORICAL)
    fs = hadoop_fs(spark, root)
    jvm = spark.sparkContext._jvm
    try:
        statuses = fs.globStatus(jvm.org.apache.hadoop.fs.Path(f"{root}/year=*/month=*/day=*"))
    except Exception as error:  # py4j wraps every Java exception in one type
        detail = str(error).strip().splitlines()
        raise DailyJobError(
            f"cannot list {root} (is LAKE_BUCKET right and the S3 endpoint up?): "
            + next((line for line in detail if "Exception" in line), detail[0] if detail else "")
        ) from None
    found: dict[date, str] = {}
    for status in statuses or []:
        if not status.isDirectory():
            continue
        uri = status.getPath().toString()
        day = lake.partition_date(uri)
        if day is not None:
            found[day] = lake.s3a_uri(settings.lake_bucket, lake.raw_historical_prefix(day))
    return found


def read_raw_bars(spark: SparkSession, uris: list[str]) -> DataFrame:
    """Raw bar lines with the explicit contract schema; malformed JSON fails the read."""
    from pyspark.sql import functions as F

    return (
        spark.read.schema(spark_ddl(HISTORICAL_BAR_COLUMNS))
        .option("mode", "FAILFAST")
        .json(uris)
        .withColumn(SOURCE_FILE, F.input_file_name())
    )


def find_malformed_line(spark: SparkSession, uris: list[str]) -> tuple[str, str] | None:
    """(file, line) of the first raw line that is not a valid bar record, if any.

    Only run after a FAILFAST read failed: Spark's error names the record, not the file.
    """
    from pyspark.sql import functions as F

    corrupt = "_corrupt_record"
    rows = (
        spark.read.schema(f"{spark_ddl(HISTORICAL_BAR_COLUMNS)}, `{corrupt}` STRING")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", corrupt)
        .json(uris)
        .select(F.input_file_name().alias(SOURCE_FILE), corrupt, "_offset")
        .where(F.col(corrupt).isNotNull())
        .limit(1)
        .collect()
    )
    return (rows[0][SOURCE_FILE], rows[0][corrupt]) if rows else None


def write_daily_metrics(metrics: DataFrame, settings: Settings, full_refresh: bool) -> None:
    """One parquet object per date partition (`spark_jobs.partition_writer`, no rename
    commit); only the dates present are replaced.

    A full refresh replaces the whole processed/historical zone instead.
    """
    from spark_jobs.partition_writer import Target, write_partitions
    from stocklake.schemas import DAILY_METRICS_KEY

    write_partitions(
        metrics,
        settings,
        Target(settings.lake_bucket, lake.PROCESSED_HISTORICAL),
        DAILY_METRICS_COLUMNS,
        DAILY_METRICS_KEY,
        full_refresh=full_refresh,
    )


@dataclass(frozen=True)
class DailyPlan:
    """What one run computes and reads, decided before any bar is read."""

    wanted: list[date]  # the trading dates to compute (a full refresh: every raw date)
    uris: list[str]  # the raw date folders to read: the wanted dates and their lookback
    full_refresh: bool
    on_empty: OnEmpty
    lookback_days: int


def plan_daily(
    available: dict[date, str],
    trading: list[date] | None,
    end: date | None,
    *,
    on_empty: OnEmpty | str = OnEmpty.FAIL,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
) -> DailyPlan:
    """The run's plan from the raw date folders found: `trading` dates up to `end`, each
    read with `lookback_days` before it for prev_close; or, when `trading` is None (a full
    refresh), every raw date."""
    if trading is None:
        wanted = sorted(available)
        read_days = wanted
    else:
        wanted = trading
        first = trading[0] - timedelta(days=lookback_days) if trading else end
        read_days = [day for day in requested_dates(first, end) if day in available]  # type: ignore[arg-type]
    return DailyPlan(
        wanted=wanted,
        uris=[available[day] for day in read_days],
        full_refresh=trading is None,
        on_empty=OnEmpty(on_empty),
        lookback_days=lookback_days,
    )


def run_daily(
    settings: Settings,
    start: date | None = None,
    end: date | None = None,
    *,
    full_refresh: bool = False,
    on_empty: OnEmpty | str = OnEmpty.FAIL,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    spark: SparkSession | None = None,
) -> DailySummary:
    """Compute and write daily metrics for [start, end) (or every raw date on a full refresh).

    The range is half-open like an Airflow data interval: `end` is the day after the
    last date computed, so one date D is `start=D, end=D + 1 day`.

    Requested dates that are not trading days (XNYS) are skipped up front and listed in
    the summary. Raises NoDataError when a requested trading date has no bars and
    on_empty='fail', CorruptInputError naming the file when a raw file cannot be read.

    The steps: plan (which dates, which raw folders), read and count the bars, compute
    and write the metrics, then the summary.
    """
    from spark_jobs.session import build_spark

    _check_request(start, end, full_refresh, on_empty)
    began = time.monotonic()
    summary = DailySummary(dates_requested=[], full_refresh=full_refresh)
    trading = None if full_refresh else _trading_dates(summary, start, end)  # type: ignore[arg-type]
    if trading == []:
        return _finished(summary, began)
    spark = spark or build_spark(settings, "stocklake-daily-metrics")
    plan = plan_daily(
        raw_historical_dates(spark, settings),
        trading,
        end,
        on_empty=on_empty,
        lookback_days=lookback_days,
    )
    if full_refresh:
        summary.dates_requested = [day.isoformat() for day in plan.wanted]
    if not plan.uris:
        return _no_data(summary, plan.wanted, on_empty, began)
    _compute_and_write(spark, settings, plan, summary)
    return _finished(summary, began)


def _check_request(
    start: date | None, end: date | None, full_refresh: bool, on_empty: OnEmpty | str
) -> None:
    if on_empty not in tuple(OnEmpty):
        choices = " or ".join(f"'{choice}'" for choice in OnEmpty)
        raise ValueError(f"on_empty must be {choices}, not {on_empty!r}")
    if full_refresh and (start or end):
        raise ValueError("--full-refresh rebuilds every raw date: give no --date/--start/--end")
    if not full_refresh and (start is None or end is None):
        raise ValueError("give --date, or --start and --end, or --full-refresh")


def _finished(summary: DailySummary, began: float) -> DailySummary:
    summary.seconds = round(time.monotonic() - began, 3)
    return summary


def _compute_and_write(
    spark: SparkSession, settings: Settings, plan: DailyPlan, summary: DailySummary
) -> None:
    """Read the planned raw folders once (cached), count them, then compute and write.

    Only what the counts and the metrics use is cached: not each line's file name, offset
    or delivery columns (bench_spark_daily, 10M bars: the s3a job 56 s -> 38 s). A
    broken line's file is found again from the raw files, on that error path only.
    """
    from pyspark import StorageLevel

    marked = mark_bars(read_raw_bars(spark, plan.uris))
    cached = marked.select(*_CACHED_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        _count_input(summary, _input_stats(spark, cached, plan.uris), marked)
        _write_metrics(cached, settings, plan, summary)
    finally:
        cached.unpersist()


# The marked bars' columns that the input counts and `daily_metrics` read.
_CACHED_COLUMNS = (
    *("symbol", "trade_date", "interval", "ts", "open", "high", "low", "close", "volume"),
    *("_invalid", "_out_of_bounds", "_latest", "_finest"),
)


def _input_stats(spark: SparkSession, marked: DataFrame, uris: list[str]) -> Row:
    """One pass over the raw files (everything after reads the cached rows): how many
    bars, and how many are invalid, out of bounds, the latest delivery, kept."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    def total(flag: Column, name: str) -> Column:
        return F.sum(flag.cast("long")).alias(name)

    try:
        return marked.agg(
            F.count(F.lit(1)).alias("rows"),
            total(F.col("_invalid"), "invalid"),
            total(F.col("_out_of_bounds"), "out_of_bounds"),
            total(F.col("_latest"), "latest"),
            total(F.col("_latest") & F.col("_finest"), "kept"),
        ).first()
    except (Py4JJavaError, PySparkException) as error:
        if "MALFORMED_RECORD" not in str(error) and "Malformed" not in str(error):
            raise
        found = find_malformed_line(spark, uris)
        if found is None:
            raise
        path, line = found
        raise CorruptInputError(path, f"not a valid bar record: {line[:200]!r}") from None


def _count_input(summary: DailySummary, stats: Row, marked: DataFrame) -> None:
    """The input figures in the summary; a line without a required field fails the run."""
    if stats["invalid"]:
        _raise_invalid(marked)
    summary.input_rows = int(stats["rows"])
    latest = int(stats["latest"] or 0)
    summary.duplicates_dropped = summary.input_rows - latest
    summary.other_interval_bars = latest - int(stats["kept"] or 0)
    summary.out_of_bounds_bars = int(stats["out_of_bounds"] or 0)
    if summary.out_of_bounds_bars:
        log.warning(
            "%d raw bar(s) outside the contract's bounds were not used",
            summary.out_of_bounds_bars,
        )


def _write_metrics(
    marked: DataFrame, settings: Settings, plan: DailyPlan, summary: DailySummary
) -> None:
    """Compute the wanted dates' metrics, hold back the rows that cannot be written,
    write the rest, and record which dates were written or skipped."""
    from pyspark.sql import functions as F

    metrics = daily_metrics(usable_bars(marked), plan.lookback_days).where(
        F.col("trade_date").isin(plan.wanted)
    )
    metrics = metrics.persist()
    try:
        summary.rows_held_back = _held_back(metrics)
        good = metrics.where(F.col(HOLD_REASON).isNull()).drop(HOLD_REASON)
        counts = {
            row["trade_date"]: row["count"] for row in good.groupBy("trade_date").count().collect()
        }
        missing = [] if plan.full_refresh else [day for day in plan.wanted if day not in counts]
        if missing and plan.on_empty == OnEmpty.FAIL:
            raise NoDataError(missing)
        if counts:
            write_daily_metrics(good, settings, plan.full_refresh)
    finally:
        metrics.unpersist()
    written = sorted(counts)
    summary.dates_skipped = [day.isoformat() for day in missing]
    summary.dates_written = [day.isoformat() for day in written]
    summary.output_rows = int(sum(counts.values()))
    summary.partitions_written = [lake.processed_historical_prefix(day) for day in written]


def _held_back(metrics: DataFrame) -> list[str]:
    """'SYMBOL DATE: reason' of each metrics row that must not be written, logged."""
    from pyspark.sql import functions as F

    rows = (
        metrics.where(F.col(HOLD_REASON).isNotNull())
        .select("symbol", "trade_date", HOLD_REASON)
        .orderBy("trade_date", "symbol")
        .collect()
    )
    held = [f"{row['symbol']} {row['trade_date']}: {row[HOLD_REASON]}" for row in rows]
    for line in held:
        log.warning("daily metrics row held back (not written): %s", line)
    return held


def _trading_dates(summary: DailySummary, start: date, end: date) -> list[date]:
    """The trading dates of [start, end); the others go in the summary with their reason.

    A day without a session is not an empty day: it is skipped before anything is read.
    """
    days = requested_dates(start, end)
    split = split_trading(days)
    summary.dates_requested = [day.isoformat() for day in days]
    summary.dates_not_trading = [f"{day} ({why})" for day, why in split.closed.items()]
    return split.trading


def _no_data(summary: DailySummary, wanted: list[date], on_empty: OnEmpty | str, began: float):
    if on_empty == OnEmpty.FAIL or not wanted:
        raise NoDataError(wanted)
    summary.dates_skipped = [day.isoformat() for day in wanted]
    summary.seconds = round(time.monotonic() - began, 3)
    return summary


def _raise_invalid(marked: DataFrame) -> None:
    from pyspark.sql import functions as F

    row = (
        marked.where(F.col("_invalid"))
        .select(SOURCE_FILE, "_offset", *REQUIRED_BAR_COLUMNS)
        .limit(1)
        .collect()[0]
        .asDict()
    )
    empty = [name for name in REQUIRED_BAR_COLUMNS if row[name] is None]
    raise CorruptInputError(
        row[SOURCE_FILE],
        f"line with _offset={row['_offset']} has no {', '.join(empty)} "
        f"(required: {', '.join(REQUIRED_BAR_COLUMNS)})",
    )
