"""Landing consumers: one Kafka topic into the lake's raw zone, exactly once.

The lake, not Kafka and not the consumer's memory, records what landed.

Layout. Good records become JSON lines (the canonical wire record plus
`_topic,_partition,_offset,_landed_at`) under the folder of their UTC event
time: `raw/historical/year=/month=/day=/` for bars, `.../hour=HH/` for ticks.
Bad records become `QuarantineRecord` lines under
`quarantine/<kind>/year=/month=/day=/` (the day they were set aside). An
object's name is `<topic>+<partition>+<first offset>+<last offset>+e<epoch>.jsonl`
for the records IN it and the writer's epoch (below), so one flush of a
partition whose records span two hours writes two objects with interleaved
ranges, and two writers of the same offsets never write the same key.

Markers. Per topic-partition, under `checkpoints/land-<kind>/<topic>/partition=<p>/`:
`pending.json` (the keys a flush is about to write) and `committed.json`
(the last offset whose records are all durable in the lake; null: none yet).
Both carry the epoch and a random id of the run that wrote them.

Ownership (fencing). When a partition is assigned (start-up or rebalance), the
lander claims it: it reads both markers with their ETags and rewrites them with
the next epoch, each conditional on the ETag it read (If-Match; If-None-Match: *
for a missing key). Every later marker write of a flush is conditional on the
ETag of this run's own previous write of that key. A lander that stalled past
its session (SIGSTOP, GC, swap) and lost the partition therefore has its next
marker write refused: it deletes the objects of its refused flush (their names
carry its epoch, so they are nobody else's) and stops with a LandingError
"fenced by a newer owner" (exit 1). Servers that ignore conditional headers
(probed once per run) get a check before and a read after each marker write,
which narrows the window but does not close it.

A flush, for every partition with buffered records, in this order:
  1. put pending.json              (the intent: which keys, which offsets)
  2. put every raw and quarantine object of the flush
  3. put committed.json            (the flush is now part of the lake)
  4. commit offset last+1 to the consumer group (for lag monitoring only)

Recovery, inside the claim: if pending is ahead of committed, its flush never
completed: its objects are deleted (they may or may not exist), never one that
committed names. Those keys are also kept in the claim and deleted again before
this owner's first flush, as a stalled writer may still create them. Then the
consumer seeks to committed+1, or explicitly to the beginning of the partition
when nothing landed yet (never to the group's committed offset). A kill -9 at
any point therefore leaves either a whole flush (marker written) or none of it,
and every record is in the lake exactly once.

Checks at assignment, each a LandingError naming the partition and what to do:
- committed+1 beyond the partition's high watermark (a Fetch, not ListOffsets),
  or markers written for another topic id (markers carry the id the broker gives
  in Metadata, where it gives one): the broker lost its log or the topic was
  re-created; landing stops until
  `stocklake land <kind> --reset-partition P --from earliest|<offset>` rewrites
  the partition's markers. (Offsets already deleted from Kafka by retention are
  logged as a warning and skipped.)
- a committed marker whose last flush's objects are gone: part of the lake was
  deleted. A partition with neither markers nor objects (a wiped lake) is simply
  landed again from Kafka's earliest offset.
- a missing bucket, at start or mid-run: one line naming it.

Rebalances: records of a revoked partition that are not flushed yet are
released (never committed, so the next owner reads them again); a newly
assigned partition stays paused until its claim and recovery above have run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from stocklake.schemas import RecordKind
from stocklake.settings import Settings
from streaming.backlog import Span, fetch_spans, lake_position, log_bounds, probe_consumer
from streaming.batching import (
    Marker,
    PartitionBatch,
    PartitionFlush,
    Writer,
    claim_marker,
    committed_key,
    committed_marker,
    marker_folder,
    pending_key,
    pending_marker,
    read_marker,
)
from streaming.errors import LandingError
from streaming.retry import RetryPolicy, call_with_retries
from streaming.store import ConditionFailed, LakeStore
from streaming.validation import EventClock, RecordGate

log = logging.getLogger(__name__)

DEFAULT_BATCH_RECORDS = 200_000
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_AGE = 30.0
DEFAULT_MAX_FUTURE = timedelta(minutes=5)
# Big fetches: kafka-python's per-request overhead dominates with small ones.
CONSUMER_TUNING: dict[str, Any] = {
    "max_poll_records": 5000,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 32 * 1024 * 1024,
}
_COMMIT_RETRY = RetryPolicy(attempts=3, first_delay=0.5, max_delay=2.0)
# A fresh group member waits about half the session timeout to join on Tansu; heartbeats
# come from kafka-python's own thread, so the brokers' minimum (6 s) is safe.
SESSION_TIMEOUT_MS = 6_000
# How long a bounded run waits for its first partition assignment before calling it idle.
_JOIN_GRACE = 30.0
# How long a bounded run waits, idle, for records of the topic that nobody lands: longer
# than a dead member's session and than another member's default batch age, twice.
_STALL_LIMIT = 60.0
_UPLOAD_THREADS = 4
# Claims lost to another writer in a row before giving up on a partition.
_CLAIM_ATTEMPTS = 5

Probe = Callable[[str], None]


@dataclass
class _Claim:
    """This run's hold on a partition: its writer identity and the ETags it last wrote."""

    writer: Writer
    pending_etag: str
    committed_etag: str
    orphans: list[str]  # keys a fenced writer may still create: deleted again at next flush


def _ahead(pending: Marker | None, committed: Marker | None) -> bool:
    """Whether pending names a flush that committed does not cover (an unfinished one)."""
    if pending is None or pending.last_offset is None:
        return False
    return (
        committed is None
        or committed.last_offset is None
        or (pending.last_offset > committed.last_offset)
    )


def default_group_id(kind: RecordKind) -> str:
    return f"stocklake-land-{kind}"


def default_topic(settings: Settings, kind: RecordKind) -> str:
    return settings.topic_historical if kind == "historical" else settings.topic_realtime


@dataclass
class LandSummary:
    """What one landing run did; `records_in == landed + quarantined` once flushed."""

    kind: str
    topic: str
    group_id: str
    bucket: str
    records_in: int = 0
    landed: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    objects_written: int = 0
    bytes_written: int = 0
    flushes: int = 0  # partition flushes: one flush of three partitions counts three
    seconds: float = 0.0
    stopped_because: str = ""
    resumed_from: dict[int, int | None] = field(default_factory=dict)
    last_landed_offsets: dict[int, int] = field(default_factory=dict)
    discarded_objects: int = 0
    released_on_rebalance: int = 0
    commit_failures: int = 0

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def rate(self) -> float:
        """Records consumed per second of the run."""
        return self.records_in / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "topic": self.topic,
            "group_id": self.group_id,
            "bucket": self.bucket,
            "records_in": self.records_in,
            "landed": self.landed,
            "quarantined": self.quarantined_total,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "objects_written": self.objects_written,
            "bytes_written": self.bytes_written,
            "flushes": self.flushes,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.rate, 1),
            "stopped_because": self.stopped_because,
            "resumed_from": {str(p): o for p, o in sorted(self.resumed_from.items())},
            "last_landed_offsets": {str(p): o for p, o in sorted(self.last_landed_offsets.items())},
            "discarded_objects": self.discarded_objects,
            "released_on_rebalance": self.released_on_rebalance,
            "commit_failures": self.commit_failures,
        }


def land(
    settings: Settings,
    kind: RecordKind,
    *,
    topic: str | None = None,
    group_id: str | None = None,
    bucket: str | None = None,
    until_idle: float | None = None,
    max_records: int | None = None,
    batch_records: int = DEFAULT_BATCH_RECORDS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_age: float = DEFAULT_BATCH_AGE,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    retry: RetryPolicy | None = None,
    handle_signals: bool = True,
    probe: Probe | None = None,
    clock: Callable[[], datetime] | None = None,
    reset_partitions: dict[int, int | None] | None = None,
) -> LandSummary:
    """Land a topic into the raw zone until idle, a record budget, or a signal.

    Bounded when `until_idle` (seconds without new records) or `max_records`
    is given; continuous otherwise. SIGTERM/SIGINT flush and return (when
    called from the main thread). `probe` is called with the name of each
    step of a flush (tests use it to crash at a chosen step). `reset_partitions`
    (partition: first offset to land, None for Kafka's earliest) rewrites those
    partitions' markers before landing starts.
    """
    if kind not in ("historical", "realtime"):
        raise ValueError(f"kind must be 'historical' or 'realtime', not {kind!r}")
    for name, value in (
        ("batch_records", batch_records),
        ("batch_bytes", batch_bytes),
        ("batch_age", batch_age),
    ):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if max_records is not None and max_records <= 0:
        raise ValueError(f"max_records must be positive, got {max_records}")
    if until_idle is not None and until_idle < 0:
        raise ValueError(f"until_idle must be >= 0 seconds, got {until_idle}")
    lander = _Lander(
        settings,
        kind,
        topic=topic or default_topic(settings, kind),
        group_id=group_id or default_group_id(kind),
        bucket=bucket,
        until_idle=until_idle,
        max_records=max_records,
        batch_records=batch_records,
        batch_bytes=batch_bytes,
        batch_age=batch_age,
        max_future=max_future,
        retry=retry or RetryPolicy(),
        probe=probe,
        clock=clock or (lambda: datetime.now(UTC)),
        reset_partitions=reset_partitions or {},
    )
    if not handle_signals or threading.current_thread() is not threading.main_thread():
        return lander.run()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, _frame: object) -> None:
        if lander.stop_reason is not None:
            # A second signal: give up the flush; nothing uncommitted is lost.
            raise KeyboardInterrupt
        lander.stop_reason = f"signal {signal.Signals(signum).name}"

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        return lander.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Lander(ConsumerRebalanceListener):
    def __init__(
        self,
        settings: Settings,
        kind: RecordKind,
        *,
        topic: str,
        group_id: str,
        bucket: str | None,
        until_idle: float | None,
        max_records: int | None,
        batch_records: int,
        batch_bytes: int,
        batch_age: float,
        max_future: timedelta,
        retry: RetryPolicy,
        probe: Probe | None,
        clock: Callable[[], datetime],
        reset_partitions: dict[int, int | None],
    ) -> None:
        self.settings = settings
        self.reset_partitions = reset_partitions
        self.kind: RecordKind = kind
        self.topic = topic
        self.group_id = group_id
        self.until_idle = until_idle
        self.max_records = max_records
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.batch_age = batch_age
        self.max_future = max_future
        # One clock for the run: a tick far ahead of what landed is held back, see EventClock.
        ahead = timedelta(seconds=settings.landing_max_ahead_seconds)
        self.event_clock = EventClock(ahead) if kind == "realtime" else None
        self.retry = retry
        self.probe = probe or (lambda _step: None)
        self.clock = clock
        self.store = LakeStore(settings, bucket=bucket, policy=retry)
        self.summary = LandSummary(kind, topic, group_id, self.store.bucket)
        self.stop_reason: str | None = None
        self._consumer: KafkaConsumer | None = None
        self._batches: dict[int, PartitionBatch] = {}
        self._oldest: float | None = None
        self._to_recover: set[TopicPartition] = set()
        self._last_activity = 0.0
        self._assigned_once = False
        self._progress = -1
        self._stalled_since = 0.0
        self._owner = uuid.uuid4().hex[:12]
        self._claims: dict[int, _Claim] = {}
        self._changed: dict[int, str | None] = {}  # partition: why its topic id changed

    # --- run ---------------------------------------------------------------

    def run(self) -> LandSummary:
        started = time.monotonic()
        self.store.check_bucket()
        for partition, first in sorted(self.reset_partitions.items()):
            self._reset(partition, first)
        consumer = self._connect()
        self._consumer = consumer
        try:
            if not consumer.partitions_for_topic(self.topic):
                log.warning("topic %s has no partitions yet (does it exist?)", self.topic)
            consumer.subscribe([self.topic], listener=self)
            self._last_activity = time.monotonic()
            self._loop()
            self._flush()
        except BaseException:
            # Whatever is buffered was never committed: the next run reads it again.
            consumer.close(autocommit=False, timeout_ms=2000)
            self.summary.seconds = time.monotonic() - started
            raise
        consumer.close(autocommit=False)
        self.summary.seconds = time.monotonic() - started
        self.summary.stopped_because = self.stop_reason or ""
        return self.summary

    def _connect(self) -> KafkaConsumer:
        servers = self.settings.kafka_bootstrap_servers
        return call_with_retries(
            lambda: KafkaConsumer(
                bootstrap_servers=servers.split(","),
                group_id=self.group_id,
                client_id=f"{self.group_id}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                bootstrap_timeout_ms=5000,
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
                # Room for a flush that waits out an S3 outage within its retries.
                max_poll_interval_ms=max(300_000, int(self.retry.total_wait * 4000)),
                **CONSUMER_TUNING,
            ),
            what=f"connecting to Kafka at {servers}",
            policy=self.retry,
            retryable=_is_transient_kafka_error,
            hint="Is the broker up (`stocklake status`)?",
        )

    def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        kind, max_future = self.kind, self.max_future
        summary = self.summary
        while self.stop_reason is None:
            # Never read past a record budget or a full batch: a flush holds <= batch_records.
            buffered = sum(batch.records for batch in self._batches.values())
            limit = min(CONSUMER_TUNING["max_poll_records"], self.batch_records - buffered)
            if self.max_records is not None:
                limit = min(limit, self.max_records - summary.records_in)
            polled = consumer.poll(timeout_ms=int(self._poll_timeout() * 1000), max_records=limit)
            if self._to_recover:
                self._resume_assigned()
            if polled:
                check = RecordGate(
                    kind, now=self.clock(), max_future=max_future, clock=self.event_clock
                ).check
                for tp, messages in polled.items():
                    batch = self._batches.get(tp.partition)
                    if batch is None:
                        batch = PartitionBatch(kind, self.topic, tp.partition)
                        self._batches[tp.partition] = batch
                    add = batch.add
                    for message in messages:
                        value = message.value
                        add(message.offset, value, check(value))
                    summary.records_in += len(messages)
                self._last_activity = time.monotonic()
                if self._oldest is None:
                    self._oldest = self._last_activity
                self.probe("polled")
            if self._due():
                self._flush()
            if self.max_records is not None and summary.records_in >= self.max_records:
                self.stop_reason = "max-records"
            elif self.until_idle is not None and self._idle_for() >= self._idle_limit():
                # Idle: land what we hold (other members may be waiting on it), then decide.
                self._flush()
                self._stop_if_topic_landed()

    def _idle_limit(self) -> float:
        assert self.until_idle is not None
        return self.until_idle if self._assigned_once else self.until_idle + _JOIN_GRACE

    def _idle_for(self) -> float:
        return time.monotonic() - self._last_activity

    def _poll_timeout(self) -> float:
        timeout = 0.5
        if self._oldest is not None:
            timeout = min(timeout, self.batch_age - (time.monotonic() - self._oldest))
        if self.until_idle is not None:
            timeout = min(timeout, self._idle_limit() - self._idle_for())
        return max(timeout, 0.0)

    def _due(self) -> bool:
        if self._oldest is None:
            return False
        if time.monotonic() - self._oldest >= self.batch_age:
            return True
        batches = self._batches.values()
        return (
            sum(b.records for b in batches) >= self.batch_records
            or sum(b.bytes for b in batches) >= self.batch_bytes
        )

    def _stop_if_topic_landed(self) -> None:
        """Idle: stop once every partition of the topic has landed up to its end.

        Partitions held by other members count too: after a crash the dead member keeps
        its partitions until its session expires, and stopping before they come back to
        a live member would leave their records in Kafka with the task reported done.
        """
        backlog, landed = self._backlog()
        if not backlog:
            self.stop_reason = "idle"
            return
        now = time.monotonic()
        if self._progress != landed:
            self._progress, self._stalled_since = landed, now
        elif now - self._stalled_since > _STALL_LIMIT:
            lagging = ", ".join(f"{p}: {n}" for p, n in sorted(backlog.items()))
            raise LandingError(
                f"{self.topic}: records wait in Kafka (partition: records {lagging}) and none "
                f"landed for {now - self._stalled_since:.0f} s; does another member of group "
                f"{self.group_id} hold those partitions and not land them?"
            )
        self._last_activity = now

    def _backlog(self) -> tuple[dict[int, int], int]:
        """Records not yet landed per partition, and how far all partitions have landed."""
        consumer = self._consumer
        assert consumer is not None
        partitions = [
            TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()
        ]
        spans = self._spans(partitions)
        backlog = {tp.partition: span.waiting for tp, span in spans.items() if span.waiting}
        return backlog, sum(span.start for span in spans.values())

    def _spans(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Span]:
        """Each partition from where it has landed to its end (a fetch high watermark).

        Never from `end_offsets()`: Tansu answers it with too low an offset. An owned
        partition that has been fetched knows its high watermark; the others (held by
        other members, or not fetched yet) are probed from the lake's committed marker.
        """
        consumer = self._consumer
        assert consumer is not None
        owned = consumer.assignment() - self._to_recover
        spans: dict[TopicPartition, Span] = {}
        to_probe: dict[TopicPartition, int | None] = {}
        for tp in partitions:
            end = consumer.highwater(tp) if tp in owned else None
            if end is not None:
                spans[tp] = Span(consumer.position(tp, timeout_ms=5000), end)
            else:
                to_probe[tp] = lake_position(self.store, self.kind, self.topic, tp.partition)
        if to_probe:
            spans.update(self._probe(to_probe))
        return spans

    def _probe(self, positions: dict[TopicPartition, int | None]) -> dict[TopicPartition, Span]:
        def probe() -> dict[TopicPartition, Span]:
            consumer = probe_consumer(self.settings)
            try:
                return fetch_spans(consumer, positions)
            finally:
                consumer.close()

        try:
            return call_with_retries(
                probe,
                what=f"reading the high watermarks of {self.topic}",
                policy=self.retry,
                retryable=_is_transient_kafka_error,
                hint="Is the broker up (`stocklake status`)? Rerun to resume.",
            )
        except LandingError:
            # Keep what is already read: the lake is reachable even if Kafka is not.
            self._flush()
            raise

    # --- flush -------------------------------------------------------------

    def _flush(self) -> None:
        batches = [batch for batch in self._batches.values() if batch.records]
        if not batches:
            return
        landed_at = self.clock()
        flushes = [
            batch.plan(landed_at=landed_at, epoch=self._claims[batch.partition].writer.epoch)
            for batch in batches
        ]
        for flush in flushes:
            self._write_pending(flush, landed_at)
        self.probe("pending-written")
        objects = [obj for flush in flushes for obj in flush.objects]
        with ThreadPoolExecutor(max_workers=_UPLOAD_THREADS) as pool:
            for _ in pool.map(lambda obj: self.store.put(obj.key, obj.body), objects):
                self.probe("object-written")
        self.probe("objects-written")
        for index, flush in enumerate(flushes):
            self._write_committed(flush, landed_at, unfinished=flushes[index:])
            self.probe("marker-written")
        for flush in flushes:
            del self._batches[flush.partition]
            self._count(flush)
        self._commit_offsets(flushes)
        self.probe("offsets-committed")
        if not self._batches:
            self._oldest = None
        log.info(
            "flushed %d records of %d partitions into %d objects",
            sum(f.landed + sum(f.quarantined.values()) for f in flushes),
            len(flushes),
            len(objects),
        )

    def _write_pending(self, flush: PartitionFlush, landed_at: datetime) -> None:
        """Step 1 of a flush, only while this run still owns the partition."""
        claim = self._claims[flush.partition]
        if claim.orphans:
            # A fenced writer may have created them after our claim deleted them once.
            self.store.delete(claim.orphans)
            claim.orphans = []
        key = pending_key(self.kind, self.topic, flush.partition)
        body = pending_marker(flush, written_at=landed_at, writer=claim.writer)
        try:
            claim.pending_etag = self.store.put_if(key, body, claim.pending_etag)
        except ConditionFailed:
            raise self._fenced(flush.partition, key) from None

    def _write_committed(
        self, flush: PartitionFlush, landed_at: datetime, *, unfinished: list[PartitionFlush]
    ) -> None:
        """Step 3 of a flush; when fenced, remove this run's objects that no marker covers."""
        claim = self._claims[flush.partition]
        key = committed_key(self.kind, self.topic, flush.partition)
        body = committed_marker(flush, written_at=landed_at, writer=claim.writer)
        try:
            claim.committed_etag = self.store.put_if(key, body, claim.committed_etag)
        except ConditionFailed:
            # Their names carry our epoch: no other writer's object has any of these keys.
            self.store.delete([obj.key for done in unfinished for obj in done.objects])
            raise self._fenced(flush.partition, key) from None

    def _fenced(self, partition: int, key: str) -> LandingError:
        where = f"{self.topic}[{partition}]"
        if self.store.get(key) is None:
            return LandingError(
                f"{where}: the landing marker {key} was deleted while landing (was the lake "
                "wiped?); this run stops and removed its unfinished flush. Rerun: a partition "
                "without markers or landed objects is landed again from Kafka's earliest offset"
            )
        return LandingError(
            f"{where}: fenced by a newer owner (another lander claimed the partition while "
            "this one was stalled); this run stops and removed its unfinished flush, whose "
            "records the new owner lands"
        )

    def _count(self, flush: PartitionFlush) -> None:
        summary = self.summary
        summary.landed += flush.landed
        summary.quarantined.update(flush.quarantined)
        summary.objects_written += len(flush.objects)
        summary.bytes_written += flush.bytes
        summary.flushes += 1
        summary.last_landed_offsets[flush.partition] = flush.last_offset

    def _commit_offsets(self, flushes: list[PartitionFlush]) -> None:
        consumer = self._consumer
        assert consumer is not None
        offsets = {
            TopicPartition(self.topic, flush.partition): OffsetAndMetadata(
                flush.last_offset + 1, "", -1
            )
            for flush in flushes
        }
        try:
            call_with_retries(
                lambda: consumer.commit(offsets, timeout_ms=5000),
                what=f"committing offsets of {self.topic} for group {self.group_id}",
                policy=_COMMIT_RETRY,
                retryable=_is_transient_kafka_error,
            )
        except (LandingError, KafkaError) as error:
            # The lake already holds the truth; the group offset only feeds lag monitoring.
            self.summary.commit_failures += 1
            log.warning("offset commit failed, the lake markers stay authoritative: %s", error)

    # --- rebalance ---------------------------------------------------------
    # kafka-python runs these on its IO thread, inside poll(): they must not block or call
    # the consumer's blocking APIs, so the lake I/O of recovery happens in the main loop.

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._to_recover.discard(tp)
            self._claims.pop(tp.partition, None)
            batch = self._batches.pop(tp.partition, None)
            if batch is not None and batch.records:
                # Never committed, so the partition's next owner (maybe us) reads them again.
                self.summary.records_in -= batch.records
                self.summary.released_on_rebalance += batch.records
                log.info("%s: released %d unflushed records", tp, batch.records)
        if not self._batches:
            self._oldest = None

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        # Nothing is fetched for a new partition until the lake says where it resumes.
        consumer.pause(*assigned)
        self._to_recover.update(assigned)
        self._assigned_once = True
        self._last_activity = time.monotonic()

    def _resume_assigned(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        owned = consumer.assignment()
        todo = sorted(tp for tp in self._to_recover if tp in owned)
        self._to_recover.clear()
        if not todo:
            return
        resume = {tp: self._recover(tp.partition) for tp in todo}
        self._check_positions(resume)
        for tp, resume_at in resume.items():
            if resume_at is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, resume_at)
            consumer.resume(tp)
            log.info(
                "%s[%d] assigned; resuming at %s",
                tp.topic,
                tp.partition,
                "the beginning (nothing landed yet)" if resume_at is None else resume_at,
            )

    def _check_positions(self, resume: dict[TopicPartition, int | None]) -> None:
        """Stop when the lake has landed past a partition's log end or for another topic."""
        bounds = call_with_retries(
            lambda: log_bounds(self.settings, list(resume)),
            what=f"reading the log bounds of {self.topic}",
            policy=self.retry,
            retryable=_is_transient_kafka_error,
            hint="Is the broker up (`stocklake status`)? Rerun to resume.",
        )
        problems: dict[int, str] = {}
        for tp, resume_at in resume.items():
            start, end = bounds[tp]
            landed = "nothing" if resume_at is None else f"up to offset {resume_at - 1}"
            if resume_at is not None and resume_at > end:
                problems[tp.partition] = (
                    f"{self.topic}[{tp.partition}]: the lake has landed {landed} "
                    f"but Kafka's log ends at {end} (starts at {start})"
                )
            elif self._changed.get(tp.partition):
                problems[tp.partition] = (
                    f"{self.topic}[{tp.partition}]: {self._changed[tp.partition]} (the lake "
                    f"has landed {landed}; Kafka's log is {start}-{end})"
                )
            elif resume_at is not None and resume_at < start:
                log.warning(
                    "%s[%d]: offsets %d-%d were deleted from Kafka before they landed",
                    self.topic, tp.partition, resume_at, start - 1,
                )  # fmt: skip
        if problems:
            raise LandingError(
                "; ".join(problems.values()) + ". The broker lost its data or the topic was "
                f"re-created. To land what Kafka holds now: `stocklake land {self.kind} "
                f"--reset-partition {min(problems)} --from earliest` (or --from <offset>), per "
                "partition; the lake keeps what it landed before"
            )

    def _recover(self, partition: int) -> int | None:
        """Claim the partition and undo an unfinished flush; the offset to resume from."""
        for _attempt in range(_CLAIM_ATTEMPTS):
            committed, committed_etag = self._read_tagged(committed_key, partition)
            pending, pending_etag = self._read_tagged(pending_key, partition)
            self._check_landed(committed, partition)
            orphans = set(pending.orphans) if pending is not None else set()
            if pending is not None and _ahead(pending, committed):
                orphans.update(pending.objects)
            # Objects a committed marker names are landed: never delete them.
            orphans -= set(committed.objects) if committed is not None else set()
            base = committed or Marker(self.topic, partition, None, None, ())
            claim = self._claim(base, pending, pending_etag, committed_etag, sorted(orphans))
            if claim is not None:
                break
        else:
            raise LandingError(
                f"{self.topic}[{partition}]: could not claim the partition's landing markers "
                f"in {_CLAIM_ATTEMPTS} attempts: other landers keep rewriting them"
            )
        if claim.orphans:
            log.warning(
                "%s[%d]: removing %d objects of an unfinished flush",
                self.topic, partition, len(claim.orphans),
            )  # fmt: skip
            self.store.delete(claim.orphans)
            self.summary.discarded_objects += len(claim.orphans)
        self._claims[partition] = claim
        self._changed[partition] = self._topic_changed(committed)
        resume_at = None if base.last_offset is None else base.last_offset + 1
        self.summary.resumed_from[partition] = resume_at
        return resume_at

    def _claim(
        self,
        base: Marker,
        pending: Marker | None,
        pending_etag: str | None,
        committed_etag: str | None,
        orphans: list[str],
    ) -> _Claim | None:
        """Rewrite both markers with a bumped epoch, on the ETags read; None: someone wrote."""
        epoch = max(base.epoch, pending.epoch if pending is not None else 0) + 1
        writer = Writer(epoch, self._owner, self._topic_id())
        now = self.clock()
        pkey = pending_key(self.kind, self.topic, base.partition)
        ckey = committed_key(self.kind, self.topic, base.partition)
        try:
            pending_etag = self.store.put_if(
                pkey, claim_marker(base, writer=writer, orphans=orphans, written_at=now),
                pending_etag,
            )  # fmt: skip
            committed_etag = self.store.put_if(
                ckey, claim_marker(base, writer=writer, orphans=[], written_at=now),
                committed_etag,
            )  # fmt: skip
        except ConditionFailed:
            log.info("%s[%d]: markers changed while claiming; again", self.topic, base.partition)
            return None
        return _Claim(writer, pending_etag, committed_etag, orphans)

    def _reset(self, partition: int, first: int | None) -> None:
        """Rewrite a partition's markers so that landing resumes at `first` (None: earliest)."""
        committed, committed_etag = self._read_tagged(committed_key, partition)
        pending, pending_etag = self._read_tagged(pending_key, partition)
        orphans = set(pending.orphans) if pending is not None else set()
        if pending is not None and _ahead(pending, committed):
            orphans.update(pending.objects)
        orphans -= set(committed.objects) if committed is not None else set()
        last = None if first is None else first - 1
        epoch = committed.epoch if committed is not None else 0
        base = Marker(self.topic, partition, None, last, (), epoch)
        if self._claim(base, pending, pending_etag, committed_etag, sorted(orphans)) is None:
            raise LandingError(
                f"{self.topic}[{partition}]: another lander rewrote the markers during the "
                "reset; stop every lander of the topic and reset again"
            )
        log.warning(
            "%s[%d]: markers reset; landing starts at %s",
            self.topic, partition, "Kafka's earliest offset" if first is None else first,
        )  # fmt: skip

    def _topic_id(self) -> str | None:
        """The broker's id of the topic (None before connecting, or from brokers without)."""
        consumer = self._consumer
        # kafka-python keeps the ids of Metadata v10+ answers only on its private cluster.
        cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
        topic_id = cluster.topic_id(self.topic) if cluster is not None else None
        return None if topic_id is None else str(topic_id)

    def _topic_changed(self, committed: Marker | None) -> str | None:
        """Why markers were written for another topic of the same name, or None."""
        current = self._topic_id()
        if committed is None or committed.topic_id in (None, current) or current is None:
            return None
        return (
            f"the lake's markers were written for topic id {committed.topic_id}, "
            f"the topic now has id {current}"
        )

    def _check_landed(self, committed: Marker | None, partition: int) -> None:
        """A marker whose objects are gone means the lake lost landed records: stop."""
        if committed is None:
            return
        missing = [key for key in committed.objects if not self.store.exists(key)]
        if missing:
            raise LandingError(
                f"{self.topic}[{partition}]: the lake says offsets up to "
                f"{committed.last_offset} landed, but objects of its last flush are gone "
                f"(e.g. {missing[0]}): part of the lake was deleted. To land the partition "
                f"again from Kafka, delete its landed objects and its markers under "
                f"{marker_folder(self.kind, self.topic, partition)}, or reset it with "
                f"`stocklake land {self.kind} --reset-partition {partition} --from <offset>`"
            )

    def _read_tagged(
        self, key_of: Callable[[RecordKind, str, int], str], partition: int
    ) -> tuple[Marker | None, str | None]:
        key = key_of(self.kind, self.topic, partition)
        raw, etag = self.store.get_tagged(key)
        if raw is None:
            return None, None
        return read_marker(raw, key=key, topic=self.topic, partition=partition), etag


def _is_transient_kafka_error(error: Exception) -> bool:
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))
