"""The landing's Kafka client: a confluent-kafka (librdkafka) group consumer, and its errors.

librdkafka fetches in its own threads, outside the GIL: the landing loop only takes the
records it is handed. Its rebalance callbacks run inside `consume()`, on the caller's
thread, so they may block (recovery reads and writes the lake there).

Positions and ends: a partition's end is the high watermark of the last Fetch answer
(`get_watermark_offsets(cached=True)`); never a ListOffsets query (`cached=False`),
which Tansu 0.6.0 answers with too low an offset.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from stocklake.settings import Settings

__all__ = [
    "CONSUMER_TUNING",
    "MAX_TAKE",
    "OFFSET_BEGINNING",
    "SESSION_TIMEOUT_MS",
    "Consumer",
    "KafkaException",
    "TopicPartition",
    "consumer_config",
    "high_watermark",
    "is_transient_confluent_error",
    "open_consumer",
    "position",
    "topic_id",
    "topic_partitions",
]

log = logging.getLogger(__name__)
_LIBRDKAFKA_LOG = logging.getLogger("streaming.librdkafka")

# Records handed over per consume() call at most.
MAX_TAKE = 10_000
# Big fetches, and how much librdkafka fetches ahead.
CONSUMER_TUNING: dict[str, Any] = {
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "fetch.max.bytes": 32 * 1024 * 1024,
    # The prefetch queue (all partitions): bounded so that a batch plus it fits in memory.
    "queued.max.messages.kbytes": 64 * 1024,
}
# A fresh group member waits about half the session timeout to join on Tansu; heartbeats
# come from librdkafka's own thread, so the brokers' minimum (6 s) is safe.
SESSION_TIMEOUT_MS = 6_000
METADATA_TIMEOUT = 5.0
# No answer at all: librdkafka's local codes for a broker that is down or unreachable.
_UNREACHABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
    }
)


def is_transient_confluent_error(error: BaseException) -> bool:
    """Whether librdkafka calls the error retriable, or the broker did not answer at all."""
    if not isinstance(error, KafkaException) or not error.args:
        return False
    cause = error.args[0]
    if not isinstance(cause, KafkaError):
        return False
    return bool(cause.retriable()) or cause.code() in _UNREACHABLE


def consumer_config(
    settings: Settings, group_id: str, *, max_poll_interval_ms: int = 300_000
) -> dict[str, Any]:
    """A group consumer's settings: manual commits, earliest when nothing is committed."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group_id,
        "client.id": f"{group_id}-consumer",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": True,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 4,
        "max.poll.interval.ms": max_poll_interval_ms,
        "logger": _LIBRDKAFKA_LOG,
        "error_cb": _log_error,
        **CONSUMER_TUNING,
    }


def _log_error(error: KafkaError) -> None:
    # Connection losses are retried by librdkafka itself; a fatal error stops the next call.
    log.warning("kafka: %s", error)


def open_consumer(
    config: dict[str, Any], topic: str, timeout: float = METADATA_TIMEOUT
) -> Consumer:
    """A consumer whose brokers have answered a Metadata request (else a KafkaException)."""
    consumer = Consumer(config)
    try:
        consumer.list_topics(topic, timeout=timeout)
    except BaseException:
        consumer.close()
        raise
    return consumer


def topic_partitions(
    consumer: Consumer, topic: str, timeout: float = METADATA_TIMEOUT
) -> list[int]:
    """The topic's partitions per the brokers' metadata ([] for a topic they do not know)."""
    metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def high_watermark(consumer: Consumer, topic: str, partition: int) -> int | None:
    """The partition's end as the last Fetch answer gave it; None before any answer."""
    high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
    return None if high is None or high < 0 else high


def position(consumer: Consumer, topic: str, partition: int) -> int | None:
    """The next offset the consumer hands over; None when it has handed none yet."""
    offset = consumer.position([TopicPartition(topic, partition)])[0].offset
    return None if offset < 0 else offset


def topic_id(settings: Settings, topic: str, timeout: float = METADATA_TIMEOUT) -> str | None:
    """The broker's id of the topic as a UUID string (None where the broker gives none)."""
    admin = AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "logger": _LIBRDKAFKA_LOG}
    )
    try:
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
        found = described[topic].result(timeout=timeout)
    except Exception as error:  # an old broker, or no answer: the id check is skipped
        log.debug("no topic id for %s: %s", topic, error)
        return None
    uid = getattr(found, "topic_id", None)
    if uid is None:
        return None
    high, low = uid.get_most_significant_bits(), uid.get_least_significant_bits()
    value = ((high % 2**64) << 64) | (low % 2**64)
    return None if value == 0 else str(uuid.UUID(int=value))
