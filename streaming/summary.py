"""What one landing run did: the summary every `stocklake land` ends with."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streaming.batching import PartitionFlush


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

    def add_flush(self, flush: PartitionFlush) -> None:
        """Count one partition's completed flush."""
        self.landed += flush.landed
        self.quarantined.update(flush.quarantined)
        self.objects_written += len(flush.objects)
        self.bytes_written += flush.bytes
        self.flushes += 1
        self.last_landed_offsets[flush.partition] = flush.last_offset

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
