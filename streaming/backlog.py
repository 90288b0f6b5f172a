"""What waits in Kafka: records of a partition past what the lake holds.

The lake says where a partition's landing resumes (its committed marker's last
offset + 1, or the beginning); the partition's end is the high watermark of a
Fetch response. Never ListOffsets(LATEST) (`KafkaConsumer.end_offsets()`):
Tansu 0.6.0 answers it with too low an offset (about three quarters of the true
end on a topic of 92,000 records), which would call a partition landed while
records still wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import NamedTuple

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from stocklake.schemas import RecordKind
from stocklake.settings import Settings
from streaming.batching import committed_key, read_marker
from streaming.errors import LandingError
from streaming.options import default_topic
from streaming.retry import RetryPolicy
from streaming.store import LakeStore

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0


class Span(NamedTuple):
    """A partition from where its landing resumes (`start`) to its high watermark (`end`)."""

    start: int
    end: int

    @property
    def waiting(self) -> int:
        return max(self.end - self.start, 0)


def lake_position(store: LakeStore, kind: RecordKind, topic: str, partition: int) -> int | None:
    """Where landing of the partition resumes per the lake; None: nothing landed yet."""
    key = committed_key(kind, topic, partition)
    raw = store.get(key)
    if raw is None:
        return None
    last = read_marker(raw, key=key, topic=topic, partition=partition).last_offset
    return None if last is None else last + 1


def probe_consumer(settings: Settings, timeout: float = PROBE_TIMEOUT) -> KafkaConsumer:
    """A consumer outside any group that only reads high watermarks (close it after use)."""
    millis = int(timeout * 1000)
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        client_id="stocklake-backlog-probe",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        bootstrap_timeout_ms=millis,
        request_timeout_ms=max(millis, 1000),
        fetch_max_wait_ms=100,
    )


def fetch_spans(
    consumer: KafkaConsumer,
    positions: Mapping[TopicPartition, int | None],
    timeout: float = PROBE_TIMEOUT,
) -> dict[TopicPartition, Span]:
    """Each partition's span from `position` (None: its beginning) to its fetch high watermark.

    Raises KafkaTimeoutError when the broker has not answered a fetch of every
    partition within `timeout` seconds.
    """
    if not positions:
        return {}
    deadline = time.monotonic() + timeout
    partitions = list(positions)
    consumer.assign(partitions)
    beginnings = consumer.beginning_offsets(partitions, timeout_ms=int(timeout * 1000))
    starts = {tp: max(positions[tp] or 0, beginnings[tp]) for tp in partitions}
    for tp, start in starts.items():
        consumer.seek(tp, start)
    unanswered = set(partitions)
    while unanswered:
        left = deadline - time.monotonic()
        if left <= 0:
            missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(unanswered))
            raise KafkaTimeoutError(f"no fetch answer within {timeout:.0f} s for {missing}")
        consumer.poll(timeout_ms=int(min(left, 0.5) * 1000), max_records=1)
        answered = {tp for tp in unanswered if consumer.highwater(tp) is not None}
        # Their buffered records are of no use: pausing lets the next poll reach the others.
        consumer.pause(*answered)
        unanswered -= answered
    return {tp: Span(starts[tp], consumer.highwater(tp)) for tp in partitions}


def log_bounds(
    settings: Settings, partitions: list[TopicPartition], timeout: float = PROBE_TIMEOUT
) -> dict[TopicPartition, Span]:
    """Each partition's log start and fetch high watermark (never ListOffsets LATEST)."""
    consumer = probe_consumer(settings, timeout)
    try:
        return fetch_spans(consumer, dict.fromkeys(partitions), timeout)
    finally:
        consumer.close()


def check_positions(
    kind: RecordKind,
    resume: Mapping[TopicPartition, int | None],
    bounds: Mapping[TopicPartition, Span],
    changed: Mapping[int, str | None],
) -> None:
    """Stop when the lake has landed past a partition's log end or for another topic.

    `resume`: where each partition's landing resumes (None: its beginning); `bounds`: its
    log start and end; `changed`: why a partition's topic id changed, where it did.
    Offsets deleted by retention before they landed are a warning.
    """
    problems: dict[int, str] = {}
    for tp, resume_at in resume.items():
        start, end = bounds[tp]
        where = f"{tp.topic}[{tp.partition}]"
        landed = "nothing" if resume_at is None else f"up to offset {resume_at - 1}"
        if resume_at is not None and resume_at > end:
            problems[tp.partition] = (
                f"{where}: the lake has landed {landed} but Kafka's log ends at {end} "
                f"(starts at {start})"
            )
        elif changed.get(tp.partition):
            problems[tp.partition] = (
                f"{where}: {changed[tp.partition]} (the lake has landed {landed}; "
                f"Kafka's log is {start}-{end})"
            )
        elif resume_at is not None and resume_at < start:
            log.warning(
                "%s: offsets %d-%d were deleted from Kafka before they landed",
                where, resume_at, start - 1,
            )  # fmt: skip
    if problems:
        raise LandingError(
            "; ".join(problems.values()) + ". The broker lost its data or the topic was "
            f"re-created. To land what Kafka holds now: `stocklake land {kind} "
            f"--reset-partition {min(problems)} --from earliest` (or --from <offset>), per "
            "partition; the lake keeps what it landed before"
        )


def unlanded(settings: Settings, timeout: float = 5.0) -> dict[str, int]:
    """Records of the two pipeline topics that no landing has committed to the lake yet.

    Per topic: the records past the lake's committed markers up to the fetch high
    watermark; a missing topic counts 0. Raises (a KafkaError, LandingError or
    botocore error) when Kafka or the lake cannot be read within about `timeout` s.
    """
    store = LakeStore(settings, policy=RetryPolicy(attempts=1))
    kinds = {default_topic(settings, kind): kind for kind in RecordKind}
    consumer = probe_consumer(settings, timeout)
    try:
        positions: dict[TopicPartition, int | None] = {}
        for topic, kind in kinds.items():
            for partition in sorted(consumer.partitions_for_topic(topic)):
                positions[TopicPartition(topic, partition)] = lake_position(
                    store, kind, topic, partition
                )
        spans = fetch_spans(consumer, positions, timeout)
    finally:
        consumer.close()
    waiting = dict.fromkeys(kinds, 0)
    for tp, span in spans.items():
        waiting[tp.topic] += span.waiting
    return waiting
