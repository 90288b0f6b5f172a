"""The Kafka sink: producer settings, sending records, and accounting for every delivery.

Wire value: `record.to_json()`; key: the symbol (UTF-8), so the default
partitioner keeps each symbol's records in one partition, in order.
Delivery: acks=all, batching, one request in flight per broker (so a retry
cannot reorder a partition), no idempotence (untested on the embedded broker).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from ingestion.errors import ProduceError
from stocklake.schemas import HistoricalBar, RealtimeTick, trade_date_of
from stocklake.settings import Settings

Progress = Callable[[int], None]
Record = HistoricalBar | RealtimeTick
LINGER_MS = 20
BATCH_BYTES = 256 * 1024
# How long a send may wait for the broker's metadata before giving up.
METADATA_WAIT_MS = 15_000
# How long to wait for the first broker to answer at all (kafka-python's default is 30 s).
BOOTSTRAP_WAIT_MS = 10_000


class Compression(StrEnum):
    """Kafka batch compression (the CLI's --compression choices)."""

    NONE = "none"
    GZIP = "gzip"


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
    # The first and last acknowledged offset per partition (the dataset's place in the log).
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
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
            "offsets": {str(k): list(v) for k, v in sorted(self.offsets.items())},
            "per_date": {d.isoformat(): n for d, n in sorted(self.per_date.items())},
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "gaps": {sym: [d.isoformat() for d in days] for sym, days in self.gaps.items()},
            "notes": list(self.notes),
        }

    def acknowledged(
        self, symbol: str, size: int, day: date, partition: int, offset: int | None = None
    ) -> None:
        """The broker acknowledged a record of `size` value bytes at `offset` of `partition`."""
        self.records += 1
        self.bytes += size
        self.per_symbol[symbol] += 1
        self.per_date[day] += 1
        self.partitions[partition] += 1
        if offset is not None and offset >= 0:
            first, last = self.offsets.get(partition, (offset, offset))
            self.offsets[partition] = (min(first, offset), max(last, offset))


def make_producer(
    settings: Settings,
    compression: Compression | str = Compression.NONE,
    max_block_ms: int = METADATA_WAIT_MS,
    bootstrap_timeout_ms: int = BOOTSTRAP_WAIT_MS,
) -> Any:
    """A kafka-python producer for the configured brokers; a clear error if none answers."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    codec = Compression(compression)
    try:
        return KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            client_id="stocklake-producer",
            acks="all",
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
            compression_type=None if codec is Compression.NONE else codec.value,
            max_block_ms=max_block_ms,
            bootstrap_timeout_ms=bootstrap_timeout_ms,
            retries=5,
        )
    except KafkaError as error:
        raise ProduceError(
            f"no Kafka broker answers at {settings.kafka_bootstrap_servers} ({error}); "
            "start the local stack with `stocklake up` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None


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
        summary.acknowledged(symbol, size, day, metadata.partition, metadata.offset)
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


def send_to_topic(
    settings: Settings,
    records: Iterable[Record],
    summary: ProduceSummary,
    *,
    compression: Compression | str,
    progress: Progress | None,
    before_send: Callable[[int], None] | None = None,
) -> ProduceSummary:
    """Open a producer, send `records` to `summary.topic`, close it (waiting up to 10 s)."""
    producer = make_producer(settings, compression)
    try:
        return send_records(
            producer, summary.topic, records, summary, progress=progress, before_send=before_send
        )
    finally:
        producer.close(timeout=10)
