"""The flush protocol: buffered batches into the lake, then the markers, then Kafka.

A flush, for every partition with buffered records, in this order:
  1. put pending.json              (the intent: which keys, which offsets)
  2. put every raw and quarantine object of the flush
  3. put committed.json            (the flush is now part of the lake)
  4. commit offset last+1 to the consumer group (for lag monitoring only)

A kill -9 at any point therefore leaves either a whole flush (marker written) or
none of it (the next owner's claim removes its objects, see `streaming.ownership`),
and every record is in the lake exactly once. A put_object that returns is durable,
which is what this order relies on.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from streaming.batching import PartitionBatch, PartitionFlush
from streaming.client import Consumer, KafkaException, TopicPartition
from streaming.errors import LandingError
from streaming.options import Probe
from streaming.ownership import Claims
from streaming.retry import RetryPolicy, call_with_retries, is_transient_kafka_error
from streaming.store import LakeStore

log = logging.getLogger(__name__)

_UPLOAD_THREADS = 4
_COMMIT_RETRY = RetryPolicy(attempts=3, first_delay=0.5, max_delay=2.0)


def write_flush(
    batches: list[PartitionBatch],
    *,
    claims: Claims,
    store: LakeStore,
    landed_at: datetime,
    probe: Probe,
) -> list[PartitionFlush]:
    """Steps 1-3 for these batches: when it returns, their records are in the lake."""
    flushes = [
        batch.plan(landed_at=landed_at, epoch=claims.epoch(batch.partition)) for batch in batches
    ]
    for flush in flushes:
        claims.write_pending(flush, landed_at)
    probe("pending-written")
    objects = [obj for flush in flushes for obj in flush.objects]
    with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as pool:
        for _ in pool.map(lambda obj: store.put(obj.key, obj.body), objects):
            probe("object-written")
    probe("objects-written")
    for index, flush in enumerate(flushes):
        claims.write_committed(flush, landed_at, unfinished=flushes[index:])
        probe("marker-written")
    log.info(
        "flushed %d records of %d partitions into %d objects",
        sum(f.landed + sum(f.quarantined.values()) for f in flushes),
        len(flushes),
        len(objects),
    )
    return flushes


def commit_offsets(
    consumer: Consumer, topic: str, group_id: str, flushes: list[PartitionFlush]
) -> bool:
    """Step 4: the group's offsets past the flushes; False when Kafka refused them.

    The lake already holds the truth; the group offset only feeds lag monitoring.
    """
    offsets = [TopicPartition(topic, flush.partition, flush.last_offset + 1) for flush in flushes]
    try:
        call_with_retries(
            lambda: _commit(consumer, offsets),
            what=f"committing offsets of {topic} for group {group_id}",
            policy=_COMMIT_RETRY,
            retryable=is_transient_kafka_error,
        )
    except (LandingError, KafkaException) as error:
        log.warning("offset commit failed, the lake markers stay authoritative: %s", error)
        return False
    return True


def _commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
    """A synchronous commit; a partition's own error (not ours any more, ...) raises too."""
    answered = consumer.commit(offsets=offsets, asynchronous=False) or []
    failed = [tp for tp in answered if tp.error is not None]
    if failed:
        raise KafkaException(failed[0].error)
