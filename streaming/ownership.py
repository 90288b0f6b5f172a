"""A landing run's hold on its partitions' markers: claim, recover, reset, fence.

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

Recovery, inside the claim: if pending is ahead of committed, its flush never
completed: its objects are deleted (they may or may not exist), never one that
committed names. Those keys are also kept in the claim and deleted again before
this owner's first flush, as a stalled writer may still create them. Then the
consumer seeks to committed+1, or explicitly to the beginning of the partition
when nothing landed yet (never to the group's committed offset).

A committed marker whose last flush's objects are gone means part of the lake was
deleted: landing stops (a partition with neither markers nor objects, a wiped
lake, is simply landed again from Kafka's earliest offset).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from stocklake.schemas import RecordKind
from streaming.batching import (
    Marker,
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
from streaming.store import ConditionFailed, LakeStore

log = logging.getLogger(__name__)

# Claims lost to another writer in a row before giving up on a partition.
_CLAIM_ATTEMPTS = 5


@dataclass
class _Claim:
    """This run's hold on a partition: its writer identity and the ETags it last wrote."""

    writer: Writer
    pending_etag: str
    committed_etag: str
    orphans: list[str]  # keys a fenced writer may still create: deleted again at next flush


class Recovered(NamedTuple):
    """A claimed partition: where landing resumes (None: its beginning), and what recovery
    found: objects of an unfinished flush it removed, why the topic changed (or None)."""

    resume_at: int | None
    discarded: int
    topic_changed: str | None


def _ahead(pending: Marker | None, committed: Marker | None) -> bool:
    """Whether pending names a flush that committed does not cover (an unfinished one)."""
    if pending is None or pending.last_offset is None:
        return False
    return (
        committed is None
        or committed.last_offset is None
        or (pending.last_offset > committed.last_offset)
    )


def _orphans(pending: Marker | None, committed: Marker | None) -> list[str]:
    """Keys an unfinished flush may have written; never one a committed marker names."""
    orphans = set(pending.orphans) if pending is not None else set()
    if pending is not None and _ahead(pending, committed):
        orphans.update(pending.objects)
    orphans -= set(committed.objects) if committed is not None else set()
    return sorted(orphans)


class Claims:
    """This run's claims on the partitions of one topic, and its conditional marker writes.

    `topic_id` gives the broker's id of the topic (None where the broker gives none).
    """

    def __init__(
        self,
        store: LakeStore,
        kind: RecordKind,
        topic: str,
        *,
        clock: Callable[[], datetime],
        topic_id: Callable[[], str | None],
    ) -> None:
        self.store = store
        self.kind = kind
        self.topic = topic
        self.clock = clock
        self.topic_id = topic_id
        self._owner = uuid.uuid4().hex[:12]
        self._claims: dict[int, _Claim] = {}

    def epoch(self, partition: int) -> int:
        return self._claims[partition].writer.epoch

    def release(self, partition: int) -> None:
        """Forget a revoked partition (its next owner claims it anew)."""
        self._claims.pop(partition, None)

    # --- claim and recover -------------------------------------------------

    def recover(self, partition: int) -> Recovered:
        """Claim the partition and undo an unfinished flush; where landing resumes."""
        for _attempt in range(_CLAIM_ATTEMPTS):
            committed, committed_etag = self._read_tagged(committed_key, partition)
            pending, pending_etag = self._read_tagged(pending_key, partition)
            self._check_landed(committed, partition)
            base = committed or Marker(self.topic, partition, None, None, ())
            orphans = _orphans(pending, committed)
            claim = self._claim(base, pending, pending_etag, committed_etag, orphans)
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
        self._claims[partition] = claim
        resume_at = None if base.last_offset is None else base.last_offset + 1
        return Recovered(resume_at, len(claim.orphans), self._topic_changed(committed))

    def reset(self, partition: int, first: int | None) -> None:
        """Rewrite a partition's markers so that landing resumes at `first` (None: earliest)."""
        committed, committed_etag = self._read_tagged(committed_key, partition)
        pending, pending_etag = self._read_tagged(pending_key, partition)
        last = None if first is None else first - 1
        epoch = committed.epoch if committed is not None else 0
        base = Marker(self.topic, partition, None, last, (), epoch)
        orphans = _orphans(pending, committed)
        if self._claim(base, pending, pending_etag, committed_etag, orphans) is None:
            raise LandingError(
                f"{self.topic}[{partition}]: another lander rewrote the markers during the "
                "reset; stop every lander of the topic and reset again"
            )
        log.warning(
            "%s[%d]: markers reset; landing starts at %s",
            self.topic, partition, "Kafka's earliest offset" if first is None else first,
        )  # fmt: skip

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
        writer = Writer(epoch, self._owner, self.topic_id())
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

    def _topic_changed(self, committed: Marker | None) -> str | None:
        """Why markers were written for another topic of the same name, or None."""
        current = self.topic_id()
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

    # --- the marker writes of a flush --------------------------------------

    def write_pending(self, flush: PartitionFlush, landed_at: datetime) -> None:
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

    def write_committed(
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
