"""The lake's layout, defined once: zones, partition paths and object names.

One bucket (LAKE_BUCKET); zones are its top-level prefixes. Every key here is
relative to the bucket; `s3_uri`/`s3a_uri` add the scheme and bucket.

    raw/historical/year=YYYY/month=MM/day=DD/<topic>+<partition>+<first>+<last>[+e<epoch>].jsonl
    raw/realtime/year=YYYY/month=MM/day=DD/hour=HH/<topic>+<partition>+<first>+<last>[+e<epoch>].jsonl
    processed/historical/date=YYYY-MM-DD/part-*.parquet
    processed/realtime/window=15m|1h/date=YYYY-MM-DD/part-*.parquet
    processed/features/daily/date=YYYY-MM-DD/part-*.parquet
    processed/features/intraday/date=YYYY-MM-DD/part-*.parquet
    quarantine/<historical|realtime>/year=YYYY/month=MM/day=DD/<topic>+<partition>+<first>+<last>[+e<epoch>].jsonl
    checkpoints/<job>/
    models/<name>/v<N>/{model.joblib,card.json,metrics.json}, models/<name>/latest

The epoch is the landing writer's claim on the partition: two writers of the same
offsets (a stalled one and its successor) never write the same key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

ZONES = ("raw", "processed", "quarantine", "checkpoints")

RAW_HISTORICAL = "raw/historical"
RAW_REALTIME = "raw/realtime"
PROCESSED_HISTORICAL = "processed/historical"
PROCESSED_REALTIME = "processed/realtime"
PROCESSED_FEATURES_DAILY = "processed/features/daily"
PROCESSED_FEATURES_INTRADAY = "processed/features/intraday"
MODELS = "models"
QUARANTINE = "quarantine"
CHECKPOINTS = "checkpoints"

RAW_SUFFIX = ".jsonl"


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; partitions are by UTC event time")
    return moment.astimezone(UTC)


def day_path(day: date) -> str:
    return f"year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"


def raw_historical_prefix(day: date) -> str:
    """Folder of one event date's historical bars."""
    return f"{RAW_HISTORICAL}/{day_path(day)}/"


def raw_realtime_prefix(moment: datetime) -> str:
    """Folder of one event hour's ticks (UTC)."""
    moment = _as_utc(moment)
    return f"{RAW_REALTIME}/{day_path(moment.date())}/hour={moment.hour:02d}/"


def raw_realtime_day_prefix(day: date) -> str:
    return f"{RAW_REALTIME}/{day_path(day)}/"


def quarantine_prefix(kind: str, day: date) -> str:
    """Bad records of a kind, by the day they were set aside (their event time may be bad)."""
    return f"{QUARANTINE}/{kind}/{day_path(day)}/"


def processed_historical_prefix(day: date) -> str:
    return f"{PROCESSED_HISTORICAL}/date={day.isoformat()}/"


def processed_realtime_prefix(window_size: str, day: date | None = None) -> str:
    base = f"{PROCESSED_REALTIME}/window={window_size}/"
    return base if day is None else f"{base}date={day.isoformat()}/"


def processed_date_prefix(base: str, day: date) -> str:
    """One date's folder of a date-partitioned processed dataset (features, metrics)."""
    return f"{base}/date={day.isoformat()}/"


def checkpoint_prefix(job: str) -> str:
    return f"{CHECKPOINTS}/{job}/"


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Which Kafka records one raw object holds: both ends inclusive."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int

    def object_name(self, epoch: int | None = None) -> str:
        # Zero-padded so names sort in offset order within a partition.
        writer = "" if epoch is None else f"+e{epoch}"
        return (
            f"{self.topic}+{self.partition}+{self.first_offset:020d}+{self.last_offset:020d}"
            f"{writer}{RAW_SUFFIX}"
        )


_OBJECT_NAME = re.compile(
    r"(?:^|/)(?P<topic>[A-Za-z0-9._\-]+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})"
    r"(?:\+e\d+)?" + re.escape(RAW_SUFFIX) + r"$"
)


def parse_object_name(key: str) -> OffsetRange | None:
    """The offset range in a raw or quarantine object's key, or None if it is not one."""
    match = _OBJECT_NAME.search(key)
    if not match:
        return None
    return OffsetRange(
        topic=match["topic"],
        partition=int(match["partition"]),
        first_offset=int(match["first"]),
        last_offset=int(match["last"]),
    )


_DATE_PART = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})")
_ISO_DATE_PART = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def partition_date(key: str) -> date | None:
    """The event date encoded in a key's partition folders, if any."""
    match = _DATE_PART.search(key)
    if match:
        return date(int(match[1]), int(match[2]), int(match[3]))
    match = _ISO_DATE_PART.search(key)
    return date.fromisoformat(match[1]) if match else None


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def s3a_uri(bucket: str, key: str = "") -> str:
    """The same object for Spark's s3a filesystem."""
    return f"s3a://{bucket}/{key}"
