"""A dataset's fingerprint: the SHA256 of what it is (source, symbols, interval, range) and
of its records' canonical bytes, so the same data sent twice is recognised.

The canonical bytes of a bar are its wire JSON without `ingested_at` (the moment of
collection, different on every run), bars in (symbol, interval, ts) order: the same CSV,
Yahoo answer or synthetic seed gives the same fingerprint whatever the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ingestion.errors import ProduceError
from stocklake.governance import Delivery
from stocklake.schemas import HistoricalBar
from stocklake.settings import Settings

# The collection stamp: not part of what the data is.
VOLATILE_FIELDS = frozenset({"ingested_at"})


@dataclass(frozen=True)
class DatasetFingerprint:
    """What identifies a dataset before it is sent."""

    sha256: str
    source: str
    symbols: tuple[str, ...]
    interval: str
    range_start: date | None
    range_end: date | None
    records: int


def canonical_bytes(bar: HistoricalBar) -> bytes:
    """The bar's wire JSON without its volatile fields (compact, the model's field order)."""
    return bar.__pydantic_serializer__.to_json(bar, exclude=set(VOLATILE_FIELDS))


def fingerprint_bars(bars: Sequence[HistoricalBar], source: str) -> DatasetFingerprint:
    """The fingerprint of `bars` from `source`: its description, then every bar's bytes."""
    ordered = sorted(bars, key=lambda bar: (bar.symbol, bar.interval.value, bar.ts))
    symbols = tuple(sorted({bar.symbol for bar in ordered}))
    intervals = sorted({bar.interval.value for bar in ordered})
    days = [bar.ts.date() for bar in ordered]
    found = DatasetFingerprint(
        sha256="",
        source=str(source),
        symbols=symbols,
        interval=",".join(intervals),
        range_start=min(days) if days else None,
        range_end=max(days) if days else None,
        records=len(ordered),
    )
    digest = hashlib.sha256()
    header = (
        f"source={found.source}\nsymbols={','.join(symbols)}\ninterval={found.interval}\n"
        f"range={found.range_start}..{found.range_end}\nrecords={found.records}\n"
    )
    digest.update(header.encode())
    for bar in ordered:
        digest.update(canonical_bytes(bar))
        digest.update(b"\n")
    return DatasetFingerprint(**{**found.__dict__, "sha256": digest.hexdigest()})


def committed_offsets(settings: Settings, topic: str, group_id: str) -> dict[int, int]:
    """The landing group's committed offset per partition of `topic` (next offset to read).

    The landing commits only after its lake write, so an offset below the committed one
    has landed. Partitions the group never committed are absent.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=group_id,
        enable_auto_commit=False,
        client_id="stocklake-fingerprint",
        request_timeout_ms=10_000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        found: dict[int, int] = {}
        for partition in sorted(partitions):
            offset = consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[partition] = int(offset)
        return found
    finally:
        consumer.close()


def offsets_landed(offsets: dict[Any, Any], committed: dict[int, int]) -> bool:
    """Whether every partition's last sent offset is below the group's committed offset."""
    return bool(offsets) and all(
        committed.get(int(partition), -1) > int(span[1]) for partition, span in offsets.items()
    )


class DuplicateIngestError(ProduceError):
    """The dataset was sent before; the message names the earlier run and how to force."""


def decide_delivery(
    fingerprint: DatasetFingerprint,
    earlier: Sequence[Mapping[str, Any]],
    *,
    force: bool,
    scheduled: bool,
    landed: Callable[[Mapping[str, Any]], bool | None],
) -> Delivery:
    """Whether to send a dataset given its earlier sendings (newest first, ingestion_metadata
    rows): a first sending; a scheduled re-run (a DAG retry or backfill), recorded as a
    re-delivery; a forced one; or refused with DuplicateIngestError.

    `landed(row)` says whether an earlier sending has landed (None: cannot tell).
    """
    if not earlier:
        return Delivery.FIRST
    if scheduled:
        return Delivery.REDELIVERY
    if force:
        return Delivery.FORCED
    last = earlier[0]
    state = {True: "and landed", False: "and is not landed yet", None: "(landing unknown)"}[
        landed(last)
    ]
    raise DuplicateIngestError(
        f"this dataset ({fingerprint.records} {fingerprint.interval} bars of "
        f"{','.join(fingerprint.symbols)}, {fingerprint.range_start}..{fingerprint.range_end}, "
        f"fingerprint {fingerprint.sha256[:16]}) was already sent by run {last['run_id']} at "
        f"{last['sent_at']} {state}; send it again with --force"
    )
