"""Landing consumers: one Kafka topic into the lake's raw zone, exactly once.

The lake, not Kafka and not the consumer's memory, records what landed. This module is
the landing loop; its parts live next to it:
- `streaming.options`: what a run is told (`LandingOptions`, the parameters of `land`);
- `streaming.validation`: the gate, a good line or a quarantine reason per record;
- `streaming.batching`: the records of a partition since its last flush, and the markers;
- `streaming.flush`: the flush protocol (pending marker, objects, committed marker, offsets);
- `streaming.ownership`: the claim of a partition's markers (fencing) and its recovery;
- `streaming.backlog`: what waits in Kafka, and the checks of a partition's positions;
- `streaming.summary`: what the run did.

Layout. Good records become JSON lines (the canonical wire record plus
`_topic,_partition,_offset,_landed_at`) under the folder of their UTC event
time: `raw/historical/year=/month=/day=/` for bars, `.../hour=HH/` for ticks.
Bad records become `QuarantineRecord` lines under
`quarantine/<kind>/year=/month=/day=/` (the day they were set aside). An
object's name is `<topic>+<partition>+<first offset>+<last offset>+e<epoch>.jsonl`
for the records IN it and the writer's epoch (see `streaming.ownership`), so one flush
of a partition whose records span two hours writes two objects with interleaved
ranges, and two writers of the same offsets never write the same key.

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
assigned partition is claimed and recovered first, then assigned at the offset
the lake gives (nothing is fetched for it before).

Throughput: the consumer is confluent-kafka (`streaming.client`: librdkafka fetches in
its own threads); canonical ticks pass the gate's fast path; and a due flush is written
by a background thread while the loop reads the next batch. Flushes never overlap: the
next one, an idle check, a rebalance and the end of the run all wait for the one in
flight, so each partition's flushes run the protocol one after another, as before.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from kafka import TopicPartition as ProbePartition

from stocklake.schemas import RecordKind
from stocklake.settings import Settings
from streaming.backlog import (
    Span,
    check_positions,
    fetch_spans,
    lake_position,
    log_bounds,
    probe_consumer,
)
from streaming.batching import PartitionBatch, PartitionFlush
from streaming.client import (
    CONSUMER_TUNING,
    MAX_TAKE,
    OFFSET_BEGINNING,
    SESSION_TIMEOUT_MS,
    Consumer,
    KafkaException,
    TopicPartition,
    consumer_config,
    high_watermark,
    open_consumer,
    position,
    topic_id,
    topic_partitions,
)
from streaming.errors import LandingError
from streaming.flush import commit_offsets, write_flush
from streaming.options import (
    DEFAULT_BATCH_AGE,
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_RECORDS,
    DEFAULT_MAX_FUTURE,
    LandingOptions,
    default_group_id,
    default_topic,
)
from streaming.ownership import Claims
from streaming.retry import call_with_retries, is_transient_kafka_error
from streaming.store import LakeStore
from streaming.summary import LandSummary
from streaming.validation import EventClock, RecordGate

__all__ = [
    "CONSUMER_TUNING",
    "DEFAULT_BATCH_AGE",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_RECORDS",
    "DEFAULT_MAX_FUTURE",
    "SESSION_TIMEOUT_MS",
    "LandSummary",
    "LandingOptions",
    "default_group_id",
    "default_topic",
    "land",
]

log = logging.getLogger(__name__)

# How long a bounded run waits for its first partition assignment before calling it idle.
_JOIN_GRACE = 30.0
# How long a bounded run waits, idle, for records of the topic that nobody lands: longer
# than a dead member's session and than another member's default batch age, twice.
_STALL_LIMIT = 60.0
_BROKER_HINT = "Is the broker up (`stocklake status`)? Rerun to resume."


def land(
    settings: Settings,
    kind: RecordKind,
    options: LandingOptions | None = None,
    **fields: Any,
) -> LandSummary:
    """Land a topic into the raw zone until idle, a record budget, or a signal.

    How: `options`, or its fields as keywords (`land(settings, "realtime", until_idle=5.0)`);
    see `LandingOptions`. SIGTERM/SIGINT flush and return (when called from the main
    thread and `handle_signals`); a second signal gives up the flush.
    """
    if kind not in tuple(RecordKind):
        raise ValueError(f"kind must be 'historical' or 'realtime', not {kind!r}")
    if options is not None and fields:
        raise TypeError("give either options or their fields as keywords, not both")
    lander = _Lander(settings, RecordKind(kind), options or LandingOptions(**fields))
    if not lander.options.handle_signals:
        return lander.run()
    with _stop_on_signals(lander):
        return lander.run()


@contextmanager
def _stop_on_signals(lander: _Lander) -> Iterator[None]:
    """SIGTERM/SIGINT ask the lander to stop (it flushes first); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, _frame: object) -> None:
        if lander.stop_reason is not None:
            # A second signal: give up the flush; nothing uncommitted is lost.
            raise KeyboardInterrupt
        lander.stop_reason = f"signal {signal.Signals(signum).name}"

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Lander:
    """One landing run: the poll loop, its flushes, and the partitions it is given."""

    def __init__(self, settings: Settings, kind: RecordKind, options: LandingOptions) -> None:
        self.settings = settings
        self.kind = kind
        self.options = options
        self.topic = options.topic_of(settings, kind)
        self.group_id = options.group_of(kind)
        # One clock for the run: a tick far ahead of what landed is held back, see EventClock.
        ahead = timedelta(seconds=settings.landing_max_ahead_seconds)
        self.event_clock = EventClock(ahead) if kind == RecordKind.REALTIME else None
        self.store = LakeStore(settings, bucket=options.bucket, policy=options.retry)
        self.claims = Claims(
            self.store, kind, self.topic, clock=options.clock, topic_id=self._topic_id
        )
        self.summary = LandSummary(kind.value, self.topic, self.group_id, self.store.bucket)
        self.stop_reason: str | None = None
        self._consumer: Consumer | None = None
        self._batches: dict[int, PartitionBatch] = {}
        self._oldest: float | None = None
        # One flush at a time is written in the background while the loop reads on.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="land-flush")
        self._in_flight: Future[list[PartitionFlush]] | None = None
        self._owned: set[int] = set()  # assigned and recovered partitions
        self._partitions: list[int] = []  # the topic's, per the last metadata
        self._topic_uuid: str | None = None
        self._last_activity = 0.0
        self._assigned_once = False
        self._progress = -1
        self._stalled_since = 0.0
        self._changed: dict[int, str | None] = {}  # partition: why its topic id changed

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None, "not connected yet"
        return self._consumer

    # --- run ---------------------------------------------------------------

    def run(self) -> LandSummary:
        started = time.monotonic()
        self.store.check_bucket()
        for partition, first in sorted(self.options.reset_partitions.items()):
            self.claims.reset(partition, first)
        consumer = self._connect()
        self._consumer = consumer
        try:
            self._partitions = topic_partitions(consumer, self.topic)
            if not self._partitions:
                log.warning("topic %s has no partitions yet (does it exist?)", self.topic)
            consumer.subscribe(
                [self.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            self._last_activity = time.monotonic()
            self._loop()
            self._flush()
        except BaseException as error:
            # Whatever is buffered was never committed: the next run reads it again.
            self._abandon_flush(error)
            self._close()
            self.summary.seconds = time.monotonic() - started
            raise
        self._close()
        self.summary.seconds = time.monotonic() - started
        self.summary.stopped_because = self.stop_reason or ""
        return self.summary

    def _connect(self) -> Consumer:
        servers = self.settings.kafka_bootstrap_servers
        retry = self.options.retry
        config = consumer_config(
            self.settings,
            self.group_id,
            # Room for a flush that waits out an S3 outage within its retries.
            max_poll_interval_ms=max(300_000, int(retry.total_wait * 4000)),
        )
        return call_with_retries(
            lambda: open_consumer(config, self.topic),
            what=f"connecting to Kafka at {servers}",
            policy=retry,
            retryable=is_transient_kafka_error,
            hint="Is the broker up (`stocklake status`)?",
        )

    def _abandon_flush(self, error: BaseException) -> None:
        """After an error: let a flush in flight end (its offsets are not committed); a second
        signal (KeyboardInterrupt) gives it up, as it gives up the last flush."""
        future, self._in_flight = self._in_flight, None
        if future is None or isinstance(error, KeyboardInterrupt):
            return
        try:
            future.result()
        except Exception as failure:
            log.warning("the flush in flight failed too: %s", failure)

    def _close(self) -> None:
        """Leave the group without committing (the lake holds what landed)."""
        self._writer.shutdown(wait=False, cancel_futures=True)
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as error:
            log.warning("closing the Kafka consumer: %s", error)

    def _loop(self) -> None:
        options, summary = self.options, self.summary
        consume = self.consumer.consume
        while self.stop_reason is None:
            polled = consume(self._poll_limit(), self._poll_timeout())
            if polled:
                self._take(polled)
            if self._in_flight is not None and self._in_flight.done():
                self._settle()
            if self._due():
                self._flush(wait=False)
            if options.max_records is not None and summary.records_in >= options.max_records:
                self.stop_reason = "max-records"
            elif options.until_idle is not None and self._idle_for() >= self._idle_limit():
                # Idle: land what we hold (other members may be waiting on it), then decide.
                self._flush()
                self._stop_if_topic_landed()

    def _poll_limit(self) -> int:
        """Never read past a record budget or a full batch: a flush holds <= batch_records."""
        buffered = sum(batch.records for batch in self._batches.values())
        limit = min(MAX_TAKE, self.options.batch_records - buffered)
        if self.options.max_records is not None:
            limit = min(limit, self.options.max_records - self.summary.records_in)
        return limit

    def _take(self, polled: list[Any]) -> None:
        """Check and buffer one poll's records (the hot path)."""
        check = RecordGate(
            self.kind,
            now=self.options.clock(),
            max_future=self.options.max_future,
            clock=self.event_clock,
        ).check
        batches = self._batches
        current, add, taken = -1, None, 0
        for message in polled:
            if message.error() is not None:
                self._consume_error(message)
                continue
            partition = message.partition()
            if partition != current:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = PartitionBatch(self.kind, self.topic, partition)
                current, add = partition, batch.add
            value = message.value()
            add(message.offset(), value, check(value))  # type: ignore[misc]
            taken += 1
        self.summary.records_in += taken
        if not taken:
            return
        self._last_activity = time.monotonic()
        if self._oldest is None:
            self._oldest = self._last_activity
        self.options.probe("polled")

    def _consume_error(self, message: Any) -> None:
        """An error handed over in place of a record: fatal ones stop the run."""
        error = message.error()
        if error.fatal():
            raise LandingError(f"{self.topic}: the Kafka consumer failed: {error}. {_BROKER_HINT}")
        log.warning("%s[%s]: %s", self.topic, message.partition(), error)

    def _idle_limit(self) -> float:
        until_idle = self.options.until_idle
        assert until_idle is not None
        return until_idle if self._assigned_once else until_idle + _JOIN_GRACE

    def _idle_for(self) -> float:
        return time.monotonic() - self._last_activity

    def _poll_timeout(self) -> float:
        timeout = 0.5
        if self._oldest is not None:
            timeout = min(timeout, self.options.batch_age - (time.monotonic() - self._oldest))
        if self.options.until_idle is not None:
            timeout = min(timeout, self._idle_limit() - self._idle_for())
        return max(timeout, 0.0)

    def _due(self) -> bool:
        if self._oldest is None:
            return False
        if time.monotonic() - self._oldest >= self.options.batch_age:
            return True
        batches = self._batches.values()
        return (
            sum(b.records for b in batches) >= self.options.batch_records
            or sum(b.bytes for b in batches) >= self.options.batch_bytes
        )

    # --- stopping when idle ------------------------------------------------

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
        partitions = [ProbePartition(self.topic, p) for p in self._partitions]
        spans = self._spans(partitions)
        backlog = {tp.partition: span.waiting for tp, span in spans.items() if span.waiting}
        return backlog, sum(span.start for span in spans.values())

    def _spans(self, partitions: list[ProbePartition]) -> dict[ProbePartition, Span]:
        """Each partition from where it has landed to its end (a fetch high watermark).

        Never from a ListOffsets query: Tansu answers it with too low an offset. An owned
        partition that has been fetched knows its high watermark; the others (held by
        other members, or not fetched yet) are probed from the lake's committed marker.
        """
        consumer = self.consumer
        spans: dict[ProbePartition, Span] = {}
        to_probe: dict[ProbePartition, int | None] = {}
        for tp in partitions:
            end = start = None
            if tp.partition in self._owned:
                end = high_watermark(consumer, self.topic, tp.partition)
                start = position(consumer, self.topic, tp.partition)
            if end is not None and start is not None:
                spans[tp] = Span(start, end)
            else:
                to_probe[tp] = lake_position(self.store, self.kind, self.topic, tp.partition)
        if to_probe:
            spans.update(self._probe(to_probe))
        return spans

    def _probe(self, positions: dict[ProbePartition, int | None]) -> dict[ProbePartition, Span]:
        def probe() -> dict[ProbePartition, Span]:
            consumer = probe_consumer(self.settings)
            try:
                return fetch_spans(consumer, positions)
            finally:
                consumer.close()

        try:
            return call_with_retries(
                probe,
                what=f"reading the high watermarks of {self.topic}",
                policy=self.options.retry,
                retryable=is_transient_kafka_error,
                hint=_BROKER_HINT,
            )
        except LandingError:
            # Keep what is already read: the lake is reachable even if Kafka is not.
            self._flush()
            raise

    # --- flush -------------------------------------------------------------

    def _flush(self, *, wait: bool = True) -> None:
        """Land every buffered record (see `streaming.flush` for the protocol).

        The previous flush is finished first, so one partition's flushes never overlap.
        `wait=False` writes this one in the background while the loop reads on (its
        offsets are committed once it is done, by `_settle`).
        """
        self._settle()
        batches = [batch for batch in self._batches.values() if batch.records]
        self._batches = {}
        self._oldest = None
        if batches:
            self._in_flight = self._writer.submit(
                write_flush,
                batches,
                claims=self.claims,
                store=self.store,
                landed_at=self.options.clock(),
                probe=self.options.probe,
            )
        if wait:
            self._settle()

    def _settle(self) -> None:
        """Wait for the flush in flight, if any (its error is raised here), count it and
        commit its offsets."""
        future, self._in_flight = self._in_flight, None
        if future is None:
            return
        flushes = future.result()
        for flush in flushes:
            self.summary.add_flush(flush)
        if not commit_offsets(self.consumer, self.topic, self.group_id, flushes):
            self.summary.commit_failures += 1
        self.options.probe("offsets-committed")

    # --- rebalance ---------------------------------------------------------
    # librdkafka calls these inside consume(), on this thread: a newly assigned partition
    # is claimed and recovered here, then assigned at the offset the lake gives, so nothing
    # is fetched for it before the lake says where it resumes.

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        self._settle()  # a flush in flight lands (or is fenced) before its partitions go
        for tp in revoked:
            self._owned.discard(tp.partition)
            self.claims.release(tp.partition)
            batch = self._batches.pop(tp.partition, None)
            if batch is not None and batch.records:
                # Never committed, so the partition's next owner (maybe us) reads them again.
                self.summary.records_in -= batch.records
                self.summary.released_on_rebalance += batch.records
                log.info("%s[%d]: released %d unflushed records", tp.topic, tp.partition,
                         batch.records)  # fmt: skip
        if not self._batches:
            self._oldest = None

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        self._settle()
        self._assigned_once = True
        self._last_activity = time.monotonic()
        todo = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        if todo:
            self._partitions = topic_partitions(consumer, self.topic) or self._partitions
            self._topic_uuid = topic_id(self.settings, self.topic)
        resume = {ProbePartition(self.topic, p): self._recover(p) for p in todo}
        if resume:
            bounds = call_with_retries(
                lambda: log_bounds(self.settings, list(resume)),
                what=f"reading the log bounds of {self.topic}",
                policy=self.options.retry,
                retryable=is_transient_kafka_error,
                hint=_BROKER_HINT,
            )
            check_positions(self.kind, resume, bounds, self._changed)
        starts = [
            TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING if at is None else at)
            for tp, at in resume.items()
        ]
        consumer.assign(starts)
        self._owned.update(todo)
        for tp, resume_at in resume.items():
            log.info(
                "%s[%d] assigned; resuming at %s",
                tp.topic,
                tp.partition,
                "the beginning (nothing landed yet)" if resume_at is None else resume_at,
            )

    def _recover(self, partition: int) -> int | None:
        """Claim the partition (see `streaming.ownership`); the offset to resume from."""
        recovered = self.claims.recover(partition)
        self.summary.discarded_objects += recovered.discarded
        self._changed[partition] = recovered.topic_changed
        self.summary.resumed_from[partition] = recovered.resume_at
        return recovered.resume_at

    def _topic_id(self) -> str | None:
        """The broker's id of the topic as of the last assignment (None before one, or from
        brokers without topic ids)."""
        return self._topic_uuid
