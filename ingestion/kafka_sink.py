"""The Kafka sink: producer settings, sending records, and accounting for every delivery.

Wire value: `record.to_json()`; key: the symbol (UTF-8), so the partitioner (murmur2,
the Java client's and kafka-python's) keeps each symbol's records in one partition, in order.
Delivery: acks=all, batching, one request in flight per broker (so a retry
cannot reorder a partition), no idempotence (untested on the embedded broker).
The client is confluent-kafka (librdkafka, several times kafka-python's produce rate);
its delivery reports are served every `_SERVE_EVERY` records and at the final flush.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ingestion.errors import ProduceError
from stocklake.schemas import HistoricalBar, RealtimeTick, trade_date_of
from stocklake.settings import Settings

Progress = Callable[[int], None]
Record = HistoricalBar | RealtimeTick
LINGER_MS = 20
BATCH_BYTES = 256 * 1024
# How long a send may wait for the broker's metadata before giving up.
METADATA_WAIT_MS = 15_000
# How long to wait for the first broker to answer at all.
BOOTSTRAP_WAIT_MS = 10_000
# Records queued in the client at most (a send waits for room beyond that).
QUEUED_RECORDS = 500_000
# How long the last deliveries may take once every record is queued.
FLUSH_WAIT = 120.0
_SERVE_EVERY = 1_000  # records between two servings of delivery reports
_LIBRDKAFKA_LOG = logging.getLogger("ingestion.librdkafka")


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


class SinkProducer(Producer):
    """A confluent-kafka producer whose `close` waits at most `timeout` seconds."""

    def close(self, timeout: float = 10.0) -> bool:  # type: ignore[override]
        """Wait up to `timeout` s for outstanding deliveries, drop the rest, shut down."""
        if self.flush(timeout) > 0:
            self.purge()
            self.poll(0)  # their failure callbacks
        return bool(super().close())


def producer_config(
    settings: Settings,
    compression: Compression | str = Compression.NONE,
    max_block_ms: int = METADATA_WAIT_MS,
) -> dict[str, Any]:
    """librdkafka's settings for the configured brokers (see the module's docstring)."""
    codec = Compression(compression)
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": "stocklake-producer",
        "acks": "all",
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        "linger.ms": LINGER_MS,
        "batch.size": BATCH_BYTES,
        "compression.type": codec.value,
        # The Java client's (and kafka-python's) partitioner: a symbol keeps its partition
        # whichever client produced it.
        "partitioner": "murmur2_random",
        "retries": 5,
        # A record not acknowledged within this fails (its delivery report says why).
        "message.timeout.ms": max(2 * max_block_ms, 30_000),
        "queue.buffering.max.messages": QUEUED_RECORDS,
        "logger": _LIBRDKAFKA_LOG,
    }


def make_producer(
    settings: Settings,
    compression: Compression | str = Compression.NONE,
    max_block_ms: int = METADATA_WAIT_MS,
    bootstrap_timeout_ms: int = BOOTSTRAP_WAIT_MS,
) -> SinkProducer:
    """A producer for the configured brokers; a clear error if none answers."""
    producer = SinkProducer(producer_config(settings, compression, max_block_ms))
    try:
        producer.list_topics(timeout=bootstrap_timeout_ms / 1000)
    except KafkaException as error:
        producer.close(timeout=0)
        raise ProduceError(
            f"no Kafka broker answers at {settings.kafka_bootstrap_servers} "
            f"({error.args[0].str() if error.args else error}); "
            "start the local stack with `stocklake up` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    return producer


def send_records(
    producer: Producer,
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
    errors: list[KafkaError] = []
    started = time.perf_counter()

    def delivered(day: date, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            summary.failed += 1
            errors.append(error)
            return
        summary.acknowledged(
            message.key().decode(), len(message.value()), day, message.partition(), message.offset()
        )
        if progress is not None:
            progress(1)

    try:
        for index, record in enumerate(records):
            if before_send is not None:
                before_send(index)
            moment = record.event_time
            summary.first_event = min(summary.first_event or moment, moment)
            summary.last_event = max(summary.last_event or moment, moment)
            report = partial(delivered, trade_date_of(moment))
            _produce(producer, topic, record.symbol.encode(), record.to_json(), report)
            if index % _SERVE_EVERY == 0:
                producer.poll(0)
                if errors:
                    break
        left = producer.flush(FLUSH_WAIT)
    finally:
        summary.seconds = time.perf_counter() - started
    if left:
        raise ProduceError(
            f"{left} record(s) to {topic!r} were still unacknowledged after {FLUSH_WAIT:.0f} s "
            f"({summary.records} were); is the broker up (`stocklake status`)?"
        )
    if errors:
        raise ProduceError(
            f"{summary.failed} record(s) to {topic!r} were not acknowledged "
            f"({summary.records} were); first error: {errors[0]!r}{_hint(errors[0])}"
        )
    return summary


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, report: Any) -> None:
    """Queue one record; when the local queue is full, serve deliveries until it has room."""
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=report)
            return
        except BufferError:
            producer.poll(0.05)


def _hint(error: KafkaError) -> str:
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT):
        return "; does the topic exist? `stocklake up` creates the configured topics"
    return ""


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
