"""Pure bookkeeping of a landing batch: where each record goes, what a flush writes.

A batch holds the records of one topic-partition read since its last flush.
Good records are grouped by the raw folder of their UTC event time (day for
bars, hour for ticks); bad ones by the quarantine folder of the flush day.
Each group becomes one object named by the first and last offset it holds.
The two small JSON markers of the exactly-once protocol (see
`streaming.landing`) are built and read here too.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stocklake import lake
from stocklake.schemas import QuarantineRecord, RecordKind, format_ts
from streaming.errors import LandingError
from streaming.validation import Accepted, Rejected


@dataclass(slots=True)
class _Group:
    first_offset: int
    last_offset: int
    parts: list[bytes]
    sample_time: datetime  # any event time of the group: it names the folder


@dataclass(slots=True)
class _Bad:
    offset: int
    raw: bytes | None
    rejected: Rejected


class PartitionBatch:
    """Records of one topic-partition since its last flush."""

    def __init__(self, kind: RecordKind, topic: str, partition: int) -> None:
        self.kind = kind
        self.topic = topic
        self.partition = partition
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.records = 0
        self.bytes = 0
        self._groups: dict[tuple[int, ...], _Group] = {}
        self._bad: list[_Bad] = []
        self._hourly = kind == RecordKind.REALTIME
        # The lineage columns, written once; only the offset differs per line.
        lineage = f',"_topic":{json.dumps(topic)},"_partition":{partition},"_offset":'
        self._lineage = lineage.encode()

    def __len__(self) -> int:
        return self.records

    def add(self, offset: int, raw: bytes | None, verdict: Accepted | Rejected) -> None:
        """Buffer one consumed record under its destination (the consumer's hot path)."""
        last = self.last_offset
        if last is None:
            self.first_offset = offset
        elif offset <= last:
            raise LandingError(
                f"{self.topic}[{self.partition}]: offset {offset} arrived after "
                f"{last}; offsets must increase within a partition"
            )
        self.last_offset = offset
        self.records += 1
        if raw:
            self.bytes += len(raw)
        if verdict.__class__ is Rejected:
            self._bad.append(_Bad(offset, raw, verdict))  # type: ignore[arg-type]
            return
        body, moment = verdict  # type: ignore[misc]
        # Grouped by (year, month, day[, hour]); the folder name is made once per group.
        if self._hourly:
            when = (moment.year, moment.month, moment.day, moment.hour)
        else:
            when = (moment.year, moment.month, moment.day)
        # body[:-1] drops the closing brace; the lineage columns and the brace follow.
        part = body[:-1] + self._lineage + str(offset).encode()
        group = self._groups.get(when)
        if group is None:
            self._groups[when] = _Group(offset, offset, [part], moment)
        else:
            group.last_offset = offset
            group.parts.append(part)

    def _folder(self, moment: datetime) -> str:
        if self._hourly:
            return lake.raw_realtime_prefix(moment)
        return lake.raw_historical_prefix(moment.date())

    def plan(self, *, landed_at: datetime, epoch: int | None = None) -> PartitionFlush:
        """The objects this batch becomes (same records and writer's epoch: same keys)."""
        if self.first_offset is None or self.last_offset is None:
            raise ValueError(f"{self.topic}[{self.partition}]: nothing to flush")
        tail = f',"_landed_at":"{format_ts(landed_at)}"}}\n'.encode()
        objects: list[ObjectWrite] = []
        for _when, group in sorted(self._groups.items()):
            folder = self._folder(group.sample_time)
            offsets = lake.OffsetRange(
                self.topic, self.partition, group.first_offset, group.last_offset
            )
            body = tail.join(group.parts) + tail
            objects.append(
                ObjectWrite(folder + offsets.object_name(epoch), body, len(group.parts), "raw")
            )
        quarantined: Counter[str] = Counter()
        if self._bad:
            quarantined.update(bad.rejected.code for bad in self._bad)
            objects.append(self._quarantine_object(landed_at, epoch))
        landed = sum(len(group.parts) for group in self._groups.values())
        return PartitionFlush(
            kind=self.kind,
            topic=self.topic,
            partition=self.partition,
            first_offset=self.first_offset,
            last_offset=self.last_offset,
            objects=tuple(objects),
            landed=landed,
            quarantined=quarantined,
        )

    def _quarantine_object(self, landed_at: datetime, epoch: int | None) -> ObjectWrite:
        lines = [
            QuarantineRecord.of_value(
                bad.raw,
                reason=bad.rejected.reason,
                topic=self.topic,
                partition=self.partition,
                offset=bad.offset,
                quarantined_at=landed_at,
            ).to_json()
            for bad in self._bad
        ]
        offsets = lake.OffsetRange(
            self.topic, self.partition, self._bad[0].offset, self._bad[-1].offset
        )
        key = lake.quarantine_prefix(self.kind, landed_at.date()) + offsets.object_name(epoch)
        return ObjectWrite(key, b"\n".join(lines) + b"\n", len(lines), "quarantine")


@dataclass(frozen=True)
class ObjectWrite:
    key: str
    body: bytes
    records: int
    zone: str


@dataclass(frozen=True)
class PartitionFlush:
    """What one flush of one partition writes, and the offsets it covers (inclusive)."""

    kind: RecordKind
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    objects: tuple[ObjectWrite, ...]
    landed: int
    quarantined: Counter[str] = field(default_factory=Counter)

    @property
    def keys(self) -> list[str]:
        return [obj.key for obj in self.objects]

    @property
    def bytes(self) -> int:
        return sum(len(obj.body) for obj in self.objects)


# --- Markers: checkpoints/land-<kind>/<topic>/partition=<p>/{pending,committed}.json


def marker_folder(kind: RecordKind, topic: str, partition: int) -> str:
    return f"{lake.checkpoint_prefix(f'land-{kind}')}{topic}/partition={partition}/"


def pending_key(kind: RecordKind, topic: str, partition: int) -> str:
    return marker_folder(kind, topic, partition) + "pending.json"


def committed_key(kind: RecordKind, topic: str, partition: int) -> str:
    return marker_folder(kind, topic, partition) + "committed.json"


@dataclass(frozen=True)
class Writer:
    """Who writes a partition's markers: the epoch of its claim and a random run id.

    The owner id makes two writers' markers differ byte for byte (ETags are body MD5s).
    """

    epoch: int
    owner: str
    topic_id: str | None = None  # the broker's id of the topic, where it gives one


def pending_marker(flush: PartitionFlush, *, written_at: datetime, writer: Writer) -> bytes:
    """Written before a flush's objects: which keys it is about to create."""
    return _dump(
        {
            "topic": flush.topic,
            "partition": flush.partition,
            "first_offset": flush.first_offset,
            "last_offset": flush.last_offset,
            "objects": flush.keys,
            "epoch": writer.epoch,
            "owner": writer.owner,
            "topic_id": writer.topic_id,
            "written_at": format_ts(written_at),
        }
    )


def committed_marker(flush: PartitionFlush, *, written_at: datetime, writer: Writer) -> bytes:
    """Written after all of a flush's objects: the partition's last landed offset."""
    return _dump(
        {
            "topic": flush.topic,
            "partition": flush.partition,
            "first_offset": flush.first_offset,
            "last_offset": flush.last_offset,
            "objects": flush.keys,
            "landed": flush.landed,
            "quarantined": sum(flush.quarantined.values()),
            "epoch": writer.epoch,
            "owner": writer.owner,
            "topic_id": writer.topic_id,
            "written_at": format_ts(written_at),
        }
    )


@dataclass(frozen=True)
class Marker:
    topic: str
    partition: int
    first_offset: int | None
    last_offset: int | None  # None: nothing landed yet (resume at the log start)
    objects: tuple[str, ...]
    epoch: int = 0
    orphans: tuple[str, ...] = ()  # a claim's keys a fenced writer may still create
    topic_id: str | None = None


def claim_marker(
    base: Marker, *, writer: Writer, orphans: list[str], written_at: datetime
) -> bytes:
    """A marker rewritten by a new owner: same offsets and keys, its epoch, what to re-delete."""
    return _dump(
        {
            "topic": base.topic,
            "partition": base.partition,
            "first_offset": base.first_offset,
            "last_offset": base.last_offset,
            "objects": list(base.objects),
            "orphans": orphans,
            "epoch": writer.epoch,
            "owner": writer.owner,
            "topic_id": writer.topic_id,
            "written_at": format_ts(written_at),
        }
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def read_marker(raw: bytes, *, key: str, topic: str, partition: int) -> Marker:
    """Parse a marker; a corrupt or foreign one is an error naming its key."""
    try:
        data: Any = json.loads(raw)
        marker = Marker(
            topic=str(data["topic"]),
            partition=int(data["partition"]),
            first_offset=_optional_int(data["first_offset"]),
            last_offset=_optional_int(data["last_offset"]),
            objects=tuple(str(k) for k in data["objects"]),
            epoch=int(data.get("epoch", 0)),
            orphans=tuple(str(k) for k in data.get("orphans", ())),
            topic_id=data.get("topic_id"),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise LandingError(
            f"landing marker {key} is not readable ({error}); it is written only by "
            "`stocklake land`: restore it, or delete the partition's landed objects "
            "and the marker to re-land the partition from Kafka"
        ) from None
    if (marker.topic, marker.partition) != (topic, partition):
        raise LandingError(
            f"landing marker {key} is for {marker.topic}[{marker.partition}], "
            f"not {topic}[{partition}]"
        )
    return marker


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
