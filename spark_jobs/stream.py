"""Streaming job: raw ticks -> sliding-window metrics per symbol.

    raw/realtime/year=/month=/day=/hour=/*.jsonl
        -> processed/realtime/window=15m|1h/date=YYYY-MM-DD/batch-<batch id>.parquet

One Structured Streaming query per window size (file source, event-time watermark,
append mode: a window is written once, when the watermark passes its end). Each
micro-batch is written under a name derived from its batch id, so a replayed batch
replaces its own file instead of adding a second copy.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spark_jobs.contract import HOLD_REASON, any_null, with_hold_reason
from stocklake import lake
from stocklake.schemas import (
    EARLIEST_TIME,
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
    REALTIME_TICK_COLUMNS,
    REALTIME_WINDOW_COLUMNS,
    WINDOW_SIZES,
    arrow_schema,
    spark_ddl,
)
from stocklake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

DEFAULT_WATERMARK = "10m"
DEFAULT_SLIDE = "5m"
DEFAULT_MAX_FILES_PER_TRIGGER = 200
# Partitions of each query's state (dedup and windows): every micro-batch writes one state
# file per partition and operator to the checkpoint on S3, and a batch holds a few
# thousand ticks, so a new query uses this many rather than the session's
# spark.sql.shuffle.partitions. A query restarted from a checkpoint keeps its own.
DEFAULT_STATE_PARTITIONS = 2
REQUIRED_TICK_COLUMNS = ("symbol", "event_time", "price", "size")
TICKS_METRIC = "ticks"
log = logging.getLogger(__name__)

_DURATION = re.compile(
    r"^\s*(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours)\s*$"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class StreamJobError(RuntimeError):
    """A streaming query failed or was given impossible options."""


def duration_seconds(text: str) -> int:
    """'30s', '5m', '1h', '10 minutes' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h or '10 minutes'")
    return int(match[1]) * _UNIT_SECONDS[match[2][0]]


def spark_interval(seconds: int) -> str:
    return f"{seconds} seconds"


def window_job_name(window_size: str) -> str:
    return f"realtime-window-{window_size}"


@dataclass
class WindowQuerySummary:
    window_size: str
    batches: int = 0
    input_rows: int = 0
    invalid_rows: int = 0
    out_of_bounds_rows: int = 0  # raw ticks outside the contract's bounds: not used
    late_rows_dropped: int = 0
    duplicate_rows_dropped: int = 0  # exact re-deliveries (dropDuplicates)
    # The largest share of one micro-batch's ticks dropped as late (behind the watermark).
    max_batch_late_ratio: float = 0.0
    output_rows: int = 0
    rows_held_back: int = 0  # window rows not written: an overflow or an inf (logged)
    partitions_written: list[str] = field(default_factory=list)


@dataclass
class StreamSummary:
    trigger: str
    queries: list[WindowQuerySummary]
    seconds: float = 0.0

    @property
    def input_rows(self) -> int:
        return max((query.input_rows for query in self.queries), default=0)

    @property
    def output_rows(self) -> int:
        return sum(query.output_rows for query in self.queries)

    @property
    def late_rows_dropped(self) -> int:
        return max((query.late_rows_dropped for query in self.queries), default=0)

    @property
    def late_ratio(self) -> float:
        """The share of the ticks read that were dropped as late (0.0 when none were read)."""
        return round(self.late_rows_dropped / self.input_rows, 4) if self.input_rows else 0.0

    @property
    def max_batch_late_ratio(self) -> float:
        return max((query.max_batch_late_ratio for query in self.queries), default=0.0)

    def late_problem(self, max_ratio: float) -> str | None:
        """Why this run dropped too many ticks as late (a micro-batch above `max_ratio`)."""
        if self.max_batch_late_ratio <= max_ratio:
            return None
        return (
            f"a micro-batch dropped {self.max_batch_late_ratio:.0%} of its ticks as late "
            f"(limit {max_ratio:.0%}; {self.late_rows_dropped} of {self.input_rows} in the "
            "run): a tick far ahead may have moved the watermark (see the landing's "
            "ahead_of_stream quarantine), or the ticks landed out of order"
        )

    @property
    def partitions_written(self) -> list[str]:
        return sorted({p for query in self.queries for p in query.partitions_written})

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(
            input_rows=self.input_rows,
            output_rows=self.output_rows,
            # Ticks behind the watermark: every query reads every tick, so like input_rows
            # the most any query dropped, not a sum (per query: `queries`).
            late_rows_dropped=self.late_rows_dropped,
            late_ratio=self.late_ratio,
            max_batch_late_ratio=self.max_batch_late_ratio,
            # Exact re-deliveries dropped, counted the same way.
            duplicate_rows_dropped=max((q.duplicate_rows_dropped for q in self.queries), default=0),
            partitions_written=self.partitions_written,
        )
        return data


# ---------------------------------------------------------------- pure transforms


# Fields that make two ticks the same tick (an exact re-delivery).
TICK_IDENTITY = ("symbol", "event_time", "sequence", "price", "size")


def invalid_tick() -> Column:
    return any_null(REQUIRED_TICK_COLUMNS)


def out_of_bounds_tick() -> Column:
    """A tick outside the contract's bounds (stocklake.schemas), NaN and inf included."""
    from pyspark.sql import functions as F

    size, price = F.col("size"), F.col("price")
    # Spark orders NaN above every number, so `> MAX_PRICE` holds for NaN and inf.
    condition = (size < 0) | (size > MAX_VOLUME) | (price < MIN_PRICE) | (price > MAX_PRICE)
    return F.coalesce(condition | (F.col("event_time") < F.lit(EARLIEST_TIME)), F.lit(False))


def window_metrics(
    ticks: DataFrame, window_size: str, slide_seconds: int, watermark_seconds: int
) -> DataFrame:
    """Sliding-window metrics per symbol, in REALTIME_WINDOW_COLUMNS order.

    volatility is the population standard deviation of price (ddof=0), so a
    window holding a single tick has volatility 0.0, not null.
    """
    from pyspark.sql import functions as F

    size_seconds = WINDOW_SIZES[window_size]
    if not 0 < slide_seconds <= size_seconds:
        raise ValueError(
            f"slide {slide_seconds}s must be positive and at most the {window_size} window"
        )
    windowed = (
        ticks.withWatermark("event_time", spark_interval(watermark_seconds))
        # A tick delivered twice (a replayed run, a re-sent batch) counts once; event_time
        # is in the key, so the streaming state is evicted as the watermark passes.
        .dropDuplicates([c for c in TICK_IDENTITY if c in ticks.columns])
        .groupBy(
            F.window("event_time", spark_interval(size_seconds), spark_interval(slide_seconds)),
            F.col("symbol"),
        )
        .agg(
            F.avg("price").alias("avg_price"),
            F.stddev_pop("price").alias("volatility"),
            F.sum(F.col("price") * F.col("size")).alias("_price_volume"),
            # Summed as a decimal: a long sum would wrap past 2^63 silently.
            F.sum(F.col("size").cast("decimal(38,0)")).alias("total_volume"),
            F.count(F.lit(1)).alias("tick_count"),
            F.min("price").alias("min_price"),
            F.max("price").alias("max_price"),
        )
    )
    columns = {
        "window_size": F.lit(window_size),
        "window_start": F.col("window.start"),
        "window_end": F.col("window.end"),
        "vwap": F.when(F.col("total_volume") > 0, F.col("_price_volume") / F.col("total_volume")),
    }
    selected = windowed.select(
        *[columns.get(name, F.col(name)).alias(name) for name, _ in REALTIME_WINDOW_COLUMNS]
    )
    return with_hold_reason(selected, REALTIME_WINDOW_COLUMNS, "total_volume")


# ---------------------------------------------------------------- I/O


def read_ticks(spark: SparkSession, settings: Settings, max_files_per_trigger: int) -> DataFrame:
    """The raw tick files as a stream, with the contract schema (no inference)."""
    from pyspark.sql import functions as F

    ticks = (
        spark.readStream.schema(spark_ddl(REALTIME_TICK_COLUMNS))
        .option("mode", "FAILFAST")
        .option("maxFilesPerTrigger", max_files_per_trigger)
        .option("pathGlobFilter", f"*{lake.RAW_SUFFIX}")
        # The hour folders are layout, not data: without this, a query started on an empty
        # zone gets a schema without year/month/day/hour and fails once files arrive.
        .option("recursiveFileLookup", "true")
        .json(lake.s3a_uri(settings.lake_bucket, lake.RAW_REALTIME + "/"))
        .select(*[name for name, _ in REALTIME_TICK_COLUMNS])
    )
    # Counted in the query's progress (observedMetrics), so a broken line is never silent.
    observed = ticks.observe(
        TICKS_METRIC,
        F.count(F.lit(1)).alias("rows"),
        F.sum(invalid_tick().cast("long")).alias("invalid"),
        F.sum((~invalid_tick() & out_of_bounds_tick()).cast("long")).alias("out_of_bounds"),
    )
    return observed.where(~invalid_tick() & ~out_of_bounds_tick())


class WindowBatchWriter:
    """foreachBatch sink: one parquet object per (date, batch id), replaced on replay.

    A micro-batch holds the windows the watermark just closed: a few rows per symbol,
    however many ticks came in. So the batch is computed once (one Spark action, the
    stateful plan run once, nothing to persist), collected as Arrow, and each date's rows
    are PUT as one object: an S3 PUT is atomic, so a reader never sees half a file, and
    no staging folder, output committer or copy-and-delete rename stands between the
    trigger and the row being readable.
    """

    def __init__(self, settings: Settings, window_size: str) -> None:
        self.settings = settings
        self.window_size = window_size
        self.output_rows = 0
        self.rows_held_back = 0
        self.partitions: set[str] = set()
        self._client = None

    def target_key(self, day: date, batch_id: int, part: int = 0) -> str:
        prefix = lake.processed_realtime_prefix(self.window_size, day)
        return f"{prefix}batch-{batch_id:012d}-{part:03d}.parquet"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = collect_arrow(batch)
        self.rows_held_back += self._hold_back(rows, batch_id)
        good = rows.filter(pc.is_null(rows.column(HOLD_REASON))).drop_columns([HOLD_REASON])
        if good.num_rows == 0:
            return
        good = good.cast(arrow_schema(REALTIME_WINDOW_COLUMNS))
        days = pc.cast(good.column("window_start"), pa.date32())
        for day in sorted(set(days.to_pylist())):
            part = good.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            self._put(self.target_key(day, batch_id), part)
            self.partitions.add(lake.processed_realtime_prefix(self.window_size, day))
        self.output_rows += good.num_rows

    def _put(self, key: str, rows: pa.Table) -> None:
        """One date's rows, sorted as readers scan them, as one parquet object at `key`
        (a replay of the batch id replaces it)."""
        from stocklake.s3 import s3_client

        ordered = rows.sort_by([("symbol", "ascending"), ("window_start", "ascending")])
        body = pa.BufferOutputStream()
        pq.write_table(ordered, body, compression="snappy")
        if self._client is None:
            self._client = s3_client(self.settings)
        self._client.put_object(
            Bucket=self.settings.lake_bucket, Key=key, Body=body.getvalue().to_pybytes()
        )

    def _hold_back(self, rows: pa.Table, batch_id: int) -> int:
        """Log each window row that must not be written (an overflow, an inf); count them."""
        held = rows.filter(pc.is_valid(rows.column(HOLD_REASON)))
        for row in held.select(["symbol", "window_start", HOLD_REASON]).to_pylist():
            log.warning(
                "%s window %s %s (batch %d) held back (not written): %s",
                self.window_size,
                row["symbol"],
                row["window_start"],
                batch_id,
                row[HOLD_REASON],
            )
        return held.num_rows


def collect_arrow(frame: DataFrame) -> pa.Table:
    """The frame's rows as one Arrow table: a single Spark action, no pandas in between
    (timestamps stay instants in UTC, longs stay longs even beside nulls)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    # pyspark 3.5's own collect behind toPandas(); DataFrame.toArrow() is Spark 4's name.
    batches = frame._collect_as_arrow()
    if not batches:
        return to_arrow_schema(frame.schema).empty_table()
    return pa.Table.from_batches(batches)


class _ProgressTally:
    """Sums a query's progress reports, each batch once, as they appear."""

    def __init__(self, summary: WindowQuerySummary) -> None:
        self.summary = summary
        self.seen: set[int] = set()

    def update(self, query: StreamingQuery) -> None:
        for progress in query.recentProgress:
            batch_id = progress["batchId"]
            # Idle triggers report the *next* batch id without running it: skip them.
            if batch_id in self.seen or "addBatch" not in progress.get("durationMs", {}):
                continue
            self.seen.add(batch_id)
            self.summary.batches += 1
            observed = progress.get("observedMetrics", {}).get(TICKS_METRIC) or {}
            self.summary.input_rows += int(observed.get("rows") or 0)
            self.summary.invalid_rows += int(observed.get("invalid") or 0)
            self.summary.out_of_bounds_rows += int(observed.get("out_of_bounds") or 0)
            rows = int(observed.get("rows") or 0)
            late = 0
            for operator in progress.get("stateOperators", []):
                late += int(operator.get("numRowsDroppedByWatermark", 0))
                # Reported by the dedup operator only (Spark's StreamingDeduplicateExec).
                custom = operator.get("customMetrics") or {}
                dropped = int(custom.get("numDroppedDuplicateRows", 0))
                self.summary.duplicate_rows_dropped += dropped
            self.summary.late_rows_dropped += late
            if rows:
                ratio = round(min(late / rows, 1.0), 4)
                self.summary.max_batch_late_ratio = max(self.summary.max_batch_late_ratio, ratio)


@dataclass
class _WindowQuery:
    """One running window query, with what counts its progress and its output."""

    query: StreamingQuery
    tally: _ProgressTally
    writer: WindowBatchWriter

    def stop(self) -> None:
        if self.query.isActive:
            self.query.stop()
        self.tally.update(self.query)

    def summary(self) -> WindowQuerySummary:
        """The query's summary: its progress as tallied, its output as written."""
        summary = self.tally.summary
        summary.output_rows = self.writer.output_rows
        summary.rows_held_back = self.writer.rows_held_back
        summary.partitions_written = sorted(self.writer.partitions)
        return summary


def run_stream(
    settings: Settings,
    *,
    available_now: bool = True,
    processing_time: str = "30s",
    watermark: str = DEFAULT_WATERMARK,
    slide: str = DEFAULT_SLIDE,
    window_sizes: tuple[str, ...] = tuple(WINDOW_SIZES),
    max_files_per_trigger: int = DEFAULT_MAX_FILES_PER_TRIGGER,
    stop_event: threading.Event | None = None,
    spark: SparkSession | None = None,
    state_partitions: int = DEFAULT_STATE_PARTITIONS,
) -> StreamSummary:
    """Run one query per window size until the landed files are processed (available_now)
    or until SIGTERM/SIGINT or `stop_event` (processing time), then stop them cleanly."""
    from spark_jobs.session import build_spark

    watermark_seconds = duration_seconds(watermark)
    slide_seconds = duration_seconds(slide)
    trigger = _trigger(window_sizes, available_now, processing_time)
    began = time.monotonic()
    spark = spark or build_spark(settings, "stocklake-realtime-windows")
    # Enough history that every batch's report is still there when we sum them.
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "1000")

    _ensure_folder(spark, lake.s3a_uri(settings.lake_bucket, lake.RAW_REALTIME + "/"))

    running: list[_WindowQuery] = []
    try:
        for window_size in window_sizes:
            windows = window_metrics(
                read_ticks(spark, settings, max_files_per_trigger),
                window_size,
                slide_seconds,
                watermark_seconds,
            )
            running.append(_start_query(settings, windows, window_size, trigger, state_partitions))
        if available_now:
            for each in running:
                each.query.awaitTermination()
                each.tally.update(each.query)
        else:
            _run_until_stopped(running, stop_event or threading.Event())
    finally:
        for each in running:
            each.stop()
    for each in running:
        error = each.query.exception()
        if error is not None:
            raise StreamJobError(f"query {each.query.name} failed: {error.desc}")
    return StreamSummary(
        trigger="availableNow" if available_now else f"processingTime={processing_time}",
        queries=[each.summary() for each in running],
        seconds=round(time.monotonic() - began, 3),
    )


def _trigger(
    window_sizes: tuple[str, ...], available_now: bool, processing_time: str
) -> dict[str, object]:
    """The queries' trigger, once the options are known to be possible."""
    unknown = [size for size in window_sizes if size not in WINDOW_SIZES]
    if unknown:
        raise ValueError(f"unknown window size(s) {unknown}; known: {list(WINDOW_SIZES)}")
    if available_now:
        return {"availableNow": True}
    return {"processingTime": spark_interval(duration_seconds(processing_time))}


def _start_query(
    settings: Settings,
    windows: DataFrame,
    window_size: str,
    trigger: dict[str, object],
    state_partitions: int,
) -> _WindowQuery:
    """Start one window size's query: append mode, each micro-batch through its writer."""
    writer = WindowBatchWriter(settings, window_size)
    checkpoint = lake.s3a_uri(
        settings.lake_bucket, lake.checkpoint_prefix(window_job_name(window_size))
    )
    conf = windows.sparkSession.conf
    shared = conf.get("spark.sql.shuffle.partitions")
    # The query takes its own copy of the session's options when it starts: the
    # session's setting is put back at once for whatever else shares it.
    conf.set("spark.sql.shuffle.partitions", str(state_partitions))
    try:
        query = (
            windows.writeStream.queryName(window_job_name(window_size).replace("-", "_"))
            .outputMode("append")
            .foreachBatch(writer)
            .option("checkpointLocation", checkpoint)
            .trigger(**trigger)
            .start()
        )
    finally:
        conf.set("spark.sql.shuffle.partitions", shared)
    return _WindowQuery(query, _ProgressTally(WindowQuerySummary(window_size=window_size)), writer)


def _ensure_folder(spark: SparkSession, uri: str) -> None:
    """The file source refuses a missing folder: before the first tick lands, start empty."""
    from spark_jobs.session import hadoop_fs

    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(uri)
    fs = hadoop_fs(spark, uri)
    if not fs.exists(path):
        fs.mkdirs(path)


def _run_until_stopped(running: list[_WindowQuery], stop_event: threading.Event) -> None:
    """Tally progress each second until `stop_event` (set by SIGTERM/SIGINT in the main
    thread) or a query ends, then stop every query between micro-batches."""

    def request_stop(signum, frame):
        stop_event.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        while not stop_event.wait(1.0):
            for each in running:
                each.tally.update(each.query)
            if not all(each.query.isActive for each in running):
                break
        _stop_between_batches(running)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_between_batches(running: list[_WindowQuery], wait_seconds: float = 120) -> None:
    """Let a running micro-batch finish so the stop does not cut a write in half."""
    deadline = time.monotonic() + wait_seconds
    for each in running:
        query = each.query
        while query.isActive and query.status["isTriggerActive"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        query.stop()
