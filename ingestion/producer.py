"""Sending contract records to Kafka, and the produce entry points (CLI, Airflow, benchmarks).

Wire value: `record.to_json()`; key: the symbol (UTF-8), so the default
partitioner keeps each symbol's records in one partition, in order.
Delivery: acks=all, batching, one request in flight per broker (so a retry
cannot reorder a partition), no idempotence (untested on the embedded broker).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from ingestion import csv_source, synthetic, yahoo
from ingestion.market_hours import most_recent_weekday, resolve_range
from ingestion.simulator import (
    Clock,
    Pacer,
    accelerated_start,
    simulate_ticks,
    tick_spacing,
)
from stocklake.schemas import HistoricalBar, Interval, RealtimeTick, trade_date_of
from stocklake.settings import Settings

HistoricalSource = Literal["yfinance", "csv", "synthetic"]
Compression = Literal["none", "gzip"]
Progress = Callable[[int], None]
LINGER_MS = 20
BATCH_BYTES = 256 * 1024
# How long a send may wait for the broker's metadata before giving up.
METADATA_WAIT_MS = 15_000
# How long to wait for the first broker to answer at all (kafka-python's default is 30 s).
BOOTSTRAP_WAIT_MS = 10_000


class ProduceError(RuntimeError):
    """Producing failed; the message says what and what to do about it."""


@dataclass
class ProduceSummary:
    """What a producer run did; printed by the CLI, returned to Airflow tasks."""

    topic: str
    source: str
    records: int = 0
    bytes: int = 0
    failed: int = 0
    seconds: float = 0.0
    per_symbol: Counter[str] = field(default_factory=Counter)
    partitions: Counter[int] = field(default_factory=Counter)
    # Acknowledged records per trading date (the UTC date of their event time).
    per_date: Counter[date] = field(default_factory=Counter)
    first_event: datetime | None = None
    last_event: datetime | None = None
    gaps: dict[str, list[date]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Acknowledged records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (Airflow XCom, `--json`)."""
        return {
            "topic": self.topic,
            "source": self.source,
            "records": self.records,
            "bytes": self.bytes,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.rate, 1),
            "per_symbol": dict(sorted(self.per_symbol.items())),
            "partitions": {str(k): v for k, v in sorted(self.partitions.items())},
            "per_date": {d.isoformat(): n for d, n in sorted(self.per_date.items())},
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "gaps": {sym: [d.isoformat() for d in days] for sym, days in self.gaps.items()},
            "notes": list(self.notes),
        }


def make_producer(
    settings: Settings,
    compression: Compression = "none",
    max_block_ms: int = METADATA_WAIT_MS,
    bootstrap_timeout_ms: int = BOOTSTRAP_WAIT_MS,
) -> Any:
    """A kafka-python producer for the configured brokers; a clear error if none answers."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            client_id="stocklake-producer",
            acks="all",
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
            compression_type=None if compression == "none" else compression,
            max_block_ms=max_block_ms,
            bootstrap_timeout_ms=bootstrap_timeout_ms,
            retries=5,
        )
    except KafkaError as error:
        raise ProduceError(
            f"no Kafka broker answers at {settings.kafka_bootstrap_servers} ({error}); "
            "start the local stack with `stocklake up` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None


Record = HistoricalBar | RealtimeTick


def send_records(
    producer: Any,
    topic: str,
    records: Iterable[Record],
    summary: ProduceSummary,
    *,
    progress: Progress | None = None,
    before_send: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Send every record (key = symbol), wait for all acknowledgements, fill `summary`.

    Raises ProduceError after flushing if any record was not acknowledged, so
    a caller never mistakes a partial run for success.
    """
    from kafka.errors import KafkaTimeoutError

    errors: list[BaseException] = []
    started = time.perf_counter()

    def delivered(symbol: str, size: int, day: date, metadata: Any) -> None:
        summary.records += 1
        summary.bytes += size
        summary.per_symbol[symbol] += 1
        summary.per_date[day] += 1
        summary.partitions[metadata.partition] += 1
        if progress is not None:
            progress(1)

    def failed(error: BaseException) -> None:
        summary.failed += 1
        errors.append(error)

    try:
        for index, record in enumerate(records):
            if before_send is not None:
                before_send(index)
            value = record.to_json()
            symbol = record.symbol
            moment = record.event_time
            summary.first_event = min(summary.first_event or moment, moment)
            summary.last_event = max(summary.last_event or moment, moment)
            future = producer.send(topic, key=symbol.encode(), value=value)
            future.add_callback(delivered, symbol, len(value), trade_date_of(moment))
            future.add_errback(failed)
            if errors:
                break
        producer.flush()
    except KafkaTimeoutError as error:
        raise ProduceError(
            f"topic {topic!r} did not answer within {METADATA_WAIT_MS / 1000:.0f}s ({error}); "
            "does it exist? `stocklake up` creates the configured topics"
        ) from None
    finally:
        summary.seconds = time.perf_counter() - started
    if errors:
        raise ProduceError(
            f"{summary.failed} record(s) to {topic!r} were not acknowledged "
            f"({summary.records} were); first error: {errors[0]!r}"
        )
    return summary


def _produce(
    settings: Settings,
    topic: str,
    source: str,
    records: Iterable[Record],
    *,
    compression: Compression,
    progress: Progress | None,
    before_send: Callable[[int], None] | None = None,
    summary: ProduceSummary | None = None,
) -> ProduceSummary:
    summary = summary or ProduceSummary(topic=topic, source=source)
    producer = make_producer(settings, compression)
    try:
        return send_records(
            producer, topic, records, summary, progress=progress, before_send=before_send
        )
    finally:
        producer.close(timeout=10)


@dataclass
class HistoricalBatch:
    """Validated bars ready to send, with what the source reported on the way."""

    bars: list[HistoricalBar]
    gaps: dict[str, list[date]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def collect_historical(
    source: HistoricalSource,
    *,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    period: str | None = None,
    interval: str = "1d",
    seed: int = 0,
    file: str | None = None,
    symbol: str | None = None,
    columns: dict[str, str] | None = None,
    tz: str = "America/New_York",
    time_format: str | None = None,
    drift: float | None = None,
    volatility: float | None = None,
    allow_empty: bool = False,
    today: date | None = None,
    yahoo_history: yahoo.HistoryFetcher | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HistoricalBatch:
    """Read and validate every bar first, so nothing is sent unless all of it is good.

    A symbol with no bar in the range is an error, unless `allow_empty`
    (scheduled runs: a market holiday): then it is skipped with a note. An
    unknown symbol or a bad file is an error either way.
    """
    from pathlib import Path
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if interval not in tuple(Interval):
        raise ProduceError(f"--interval {interval!r} is not one of {', '.join(Interval)}")
    today = today or datetime.now(UTC).date()
    ingested_at = datetime.now(UTC)
    symbols = [s.strip().upper() for s in symbols or [] if s.strip()] or None

    if source == "yfinance":
        # Yahoo understands periods (5d, 1mo, max) itself: hand it the user's words.
        if period is not None and (start is not None or end is not None):
            raise ProduceError("give either --period or --start/--end, not both")
        yahoo_days = resolve_range(start, end, None, today) if period is None else None
        bars: list[HistoricalBar] = []
        wanted = symbols or list(yahoo.DEFAULT_SYMBOLS)
        kwargs = {"history": yahoo_history} if yahoo_history else {}
        notes: list[str] = []
        for sym in wanted:
            try:
                bars.extend(
                    yahoo.fetch_history(
                        sym,
                        interval,
                        days=yahoo_days,
                        period=period,
                        ingested_at=ingested_at,
                        sleep=sleep,
                        **kwargs,
                    )
                )
            except yahoo.YahooNoBars as error:
                if not allow_empty:
                    raise
                notes.append(f"skipped {error}")
        return HistoricalBatch(bars, notes=notes)

    days = resolve_range(start, end, period, today)
    if source == "csv":
        if file is None:
            if symbol is not None or columns:
                raise ProduceError("--symbol and --columns apply to --file; add --file PATH")
            results = []
            skipped = []
            for one in csv_source.bundled_files_for(symbols, interval):
                try:
                    results += csv_source.load_bundled([one.symbol], interval, days, ingested_at)
                except csv_source.CsvNoBars as error:
                    if not allow_empty:
                        raise
                    skipped.append(f"skipped {error}")
        else:
            try:
                zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ProduceError(f"--tz {tz!r} is not a known time zone") from None
            result = csv_source.read_csv_bars(
                Path(file),
                interval=interval,
                symbol=symbol.upper() if symbol else None,
                columns=columns,
                tz=zone,
                time_format=time_format,
                days=days,
                symbols=symbols,
                ingested_at=ingested_at,
            )
            skipped = []
            if not result.bars and not allow_empty:
                raise csv_source.CsvNoBars(
                    f"{file}: {result.rows_read} rows from {result.first_date} to "
                    f"{result.last_date}, none for {', '.join(symbols or ['any symbol'])} "
                    f"in {days}"
                )
            if interval == "1d":
                result.gaps = csv_source.find_gaps(result.bars)
            results = [result]
        gaps: dict[str, list[date]] = {}
        notes = list(skipped)
        for result in results:
            gaps.update(result.gaps)
            notes.append(
                f"{result.path.name}: {len(result.bars)} of {result.rows_read} rows in range"
            )
        return HistoricalBatch(
            [bar for result in results for bar in result.bars], gaps=gaps, notes=notes
        )

    if source == "synthetic":
        if days is None:
            days = resolve_range(None, None, "1mo", today)
        assert days is not None
        wanted = symbols or list(yahoo.DEFAULT_SYMBOLS)
        gbm_args = {
            key: value
            for key, value in (("drift", drift), ("volatility", volatility))
            if value is not None
        }
        bars = list(
            synthetic.synthetic_bars(
                wanted, days, interval, seed=seed, ingested_at=ingested_at, **gbm_args
            )
        )
        if not bars and not allow_empty:
            raise ProduceError(f"{days} holds no weekday: no synthetic bars to produce")
        return HistoricalBatch(bars, notes=[f"seed {seed}, weekdays in {days}"])

    raise ProduceError(f"--source {source!r} is not one of yfinance, csv, synthetic")


def produce_historical(
    settings: Settings,
    *,
    source: HistoricalSource,
    topic: str | None = None,
    compression: Compression = "none",
    progress: Progress | None = None,
    on_collected: Callable[[HistoricalBatch], None] | None = None,
    **collect_args: Any,
) -> ProduceSummary:
    """Collect bars from a source and send them to the historical topic.

    `collect_args` are those of `collect_historical` (symbols, start, end,
    period, interval, seed, file, symbol, columns, tz, ...). `start` is
    inclusive and `end` exclusive.
    """
    batch = collect_historical(source, **collect_args)
    if on_collected is not None:
        on_collected(batch)
    target = topic or settings.topic_historical
    summary = ProduceSummary(topic=target, source=source, gaps=batch.gaps, notes=batch.notes)
    if not batch.bars:
        summary.notes.append("no bars in the range: nothing sent")
        return summary
    return _produce(
        settings,
        target,
        source,
        batch.bars,
        compression=compression,
        progress=progress,
        summary=summary,
    )


@dataclass(frozen=True)
class RealtimePlan:
    """A simulator run: which ticks, how fast, on which clock."""

    symbols: tuple[str, ...]
    rate: float
    count: int | None
    seed: int
    clock: Clock
    start: datetime
    tick_seconds: float
    drift: float | None = None
    volatility: float | None = None

    def ticks(self) -> Iterable[RealtimeTick]:
        gbm_args = {
            key: value
            for key, value in (("drift", self.drift), ("volatility", self.volatility))
            if value is not None
        }
        return simulate_ticks(
            self.symbols,
            seed=self.seed,
            start=self.start,
            tick_seconds=self.tick_seconds,
            count=self.count,
            sessions_only=self.clock == "accelerated",
            **gbm_args,
        )


def plan_realtime(
    symbols: Sequence[str],
    *,
    rate: float,
    count: int | None = None,
    duration: float | None = None,
    seed: int = 0,
    clock: Clock = "accelerated",
    session_date: date | None = None,
    drift: float | None = None,
    volatility: float | None = None,
    now: datetime | None = None,
) -> RealtimePlan:
    """Turn CLI-style options into a plan; `--duration` becomes a count at `--rate`."""
    if count is not None and duration is not None:
        raise ProduceError("give either --count or --duration, not both")
    if count is None and duration is None:
        raise ProduceError("give --count N or --duration SECONDS")
    if count is not None and count <= 0:
        raise ProduceError(f"--count must be positive, got {count}")
    if duration is not None:
        if duration <= 0:
            raise ProduceError(f"--duration must be positive, got {duration}")
        if rate <= 0:
            raise ProduceError("--duration needs a --rate above 0 (rate 0 is unpaced: use --count)")
        count = max(1, round(duration * rate))
    if rate < 0:
        raise ProduceError(f"--rate must be >= 0, got {rate}")
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
    if not symbols:
        raise ProduceError("--symbols is empty")
    now = now or datetime.now(UTC)
    if clock == "accelerated":
        day = session_date or most_recent_weekday(now.date())
        try:
            start = accelerated_start(day)
        except ValueError as error:
            raise ProduceError(str(error)) from None
    elif clock == "live":
        if session_date is not None:
            raise ProduceError("--start applies to --clock accelerated; live ticks are stamped now")
        start = now
    else:
        raise ProduceError(f"--clock {clock!r} is not live or accelerated")
    return RealtimePlan(
        symbols=symbols,
        rate=rate,
        count=count,
        seed=seed,
        clock=clock,
        start=start,
        tick_seconds=tick_spacing(rate, clock),
        drift=drift,
        volatility=volatility,
    )


def plan_interval(
    symbols: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    count: int,
    rate: float = 0,
    seed: int = 0,
    drift: float | None = None,
    volatility: float | None = None,
) -> RealtimePlan:
    """`count` ticks whose event times spread evenly over [start, end).

    For scheduled runs: each run simulates exactly its own data interval, so
    consecutive runs form one continuous feed and windows close as it advances.
    """
    if count <= 0:
        raise ProduceError(f"count must be positive, got {count}")
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ProduceError(f"[{start}, {end}) is not a time-zone-aware, non-empty interval")
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
    if not symbols:
        raise ProduceError("--symbols is empty")
    return RealtimePlan(
        symbols=symbols,
        rate=rate,
        count=count,
        seed=seed,
        clock="interval",
        # A plain UTC datetime (Airflow hands over pendulum ones).
        start=datetime.fromtimestamp(start.timestamp(), tz=UTC),
        tick_seconds=(end - start).total_seconds() / count,
        drift=drift,
        volatility=volatility,
    )


def produce_realtime(
    settings: Settings,
    plan: RealtimePlan,
    *,
    topic: str | None = None,
    compression: Compression = "none",
    progress: Progress | None = None,
) -> ProduceSummary:
    """Send the plan's ticks to the realtime topic, paced at `plan.rate` per wall second."""
    target = topic or settings.topic_realtime
    pacer = Pacer(plan.rate)
    summary = ProduceSummary(
        topic=target,
        source="simulator",
        notes=[f"clock {plan.clock}, seed {plan.seed}, {plan.tick_seconds:.3f}s simulated/tick"],
    )
    return _produce(
        settings,
        target,
        "simulator",
        plan.ticks(),
        compression=compression,
        progress=progress,
        before_send=pacer.wait_for,
        summary=summary,
    )


def produce_ticks(
    settings: Settings,
    count: int,
    *,
    symbols: Sequence[str] = yahoo.DEFAULT_SYMBOLS,
    seed: int = 0,
    topic: str | None = None,
    session_date: date | None = None,
    compression: Compression = "none",
) -> ProduceSummary:
    """For benchmarks and tests: `count` accelerated-clock ticks, unpaced (rate 0)."""
    plan = plan_realtime(
        symbols,
        rate=0,
        count=count,
        seed=seed,
        clock="accelerated",
        session_date=session_date,
    )
    return produce_realtime(settings, plan, topic=topic, compression=compression)
