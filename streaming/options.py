"""What one landing run is told: the parameters of `land`, defined once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stocklake.schemas import RecordKind
from stocklake.settings import Settings
from streaming.retry import RetryPolicy

DEFAULT_BATCH_RECORDS = 200_000
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
DEFAULT_BATCH_AGE = 30.0
DEFAULT_MAX_FUTURE = timedelta(minutes=5)

Probe = Callable[[str], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_probe(_step: str) -> None:
    pass


def default_group_id(kind: RecordKind) -> str:
    return f"stocklake-land-{kind}"


def default_topic(settings: Settings, kind: RecordKind) -> str:
    topics = {
        RecordKind.HISTORICAL: settings.topic_historical,
        RecordKind.REALTIME: settings.topic_realtime,
    }
    return topics[RecordKind(kind)]


@dataclass
class LandingOptions:
    """How one landing run lands a topic (every field has a default; None where noted).

    Bounded when `until_idle` (seconds without new records) or `max_records` is given;
    continuous otherwise. `probe` is called with the name of each step of a flush (tests
    use it to crash at a chosen step). `reset_partitions` (partition: first offset to land,
    None for Kafka's earliest) rewrites those partitions' markers before landing starts.
    """

    topic: str | None = None  # None: the settings' topic of the kind
    group_id: str | None = None  # None: stocklake-land-<kind>
    bucket: str | None = None  # None: the settings' lake bucket
    until_idle: float | None = None
    max_records: int | None = None
    batch_records: int = DEFAULT_BATCH_RECORDS
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_age: float = DEFAULT_BATCH_AGE
    max_future: timedelta = DEFAULT_MAX_FUTURE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    handle_signals: bool = True  # SIGTERM/SIGINT flush and return (from the main thread)
    probe: Probe = _no_probe
    clock: Callable[[], datetime] = _utc_now
    reset_partitions: dict[int, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Callers may pass None for "the default" (as `land` has always taken).
        self.retry = self.retry or RetryPolicy()
        self.probe = self.probe or _no_probe
        self.clock = self.clock or _utc_now
        self.reset_partitions = self.reset_partitions or {}
        for name in ("batch_records", "batch_bytes", "batch_age"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_records is not None and self.max_records <= 0:
            raise ValueError(f"max_records must be positive, got {self.max_records}")
        if self.until_idle is not None and self.until_idle < 0:
            raise ValueError(f"until_idle must be >= 0 seconds, got {self.until_idle}")

    def topic_of(self, settings: Settings, kind: RecordKind) -> str:
        return self.topic or default_topic(settings, kind)

    def group_of(self, kind: RecordKind) -> str:
        return self.group_id or default_group_id(kind)
