"""Test data for the landing tests: good wire records and every kind of bad one.

Also the tests' two ways of checking one record: `parse_record` (the core models' own
lenient parse, for the producers' tests) and `check_record` (the landing gate on one value).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from stocklake import lake
from stocklake.schemas import RECORD_TYPES, RealtimeTick, RecordKind, repeated_keys
from streaming.validation import Accepted, RecordGate, Rejected


class RecordError(ValueError):
    """A record that breaks its contract; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_record(kind: RecordKind | str, raw: bytes | str | dict[str, Any]) -> BaseModel:
    """Decode and validate one wire record with the core model; RecordError says why not."""
    if isinstance(raw, bytes | str):
        text = raw
        try:
            raw = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RecordError(f"not valid JSON: {error}") from None
        if repeated := repeated_keys(text):
            raise RecordError("; ".join(f"{key}: given more than once" for key in repeated))
    if not isinstance(raw, dict):
        raise RecordError(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return RECORD_TYPES[RecordKind(kind)].model_validate(raw)
    except ValidationError as error:
        reasons = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "record"
            reasons.append(f"{where}: {problem['msg']}")
        raise RecordError("; ".join(reasons)) from None


def check_record(
    kind: RecordKind | str, value: bytes | None, *, now: datetime, max_future: timedelta
) -> Accepted | Rejected:
    """The landing gate's verdict on one Kafka value of `kind`."""
    return RecordGate(RecordKind(kind), now=now, max_future=max_future).check(value)


SYMBOLS = ("AAPL", "MSFT", "TSLA", "AMZN", "^GSPC")


def tick(sequence: int, moment: datetime, symbol: str = "AAPL") -> RealtimeTick:
    return RealtimeTick(
        symbol=symbol,
        event_time=moment,
        price=round(100 + (sequence % 97) * 0.37, 4),
        size=100 * (1 + sequence % 5),
        sequence=sequence,
        source="simulator",
    )


def bad_values(sequence: int, moment: datetime) -> list[tuple[str, bytes | None]]:
    """Malformed values, each with the reason code it must get; every code at least once."""
    good = json.loads(tick(sequence, moment).to_json())
    future = datetime.now(UTC) + timedelta(days=3)

    def variant(**changes: object) -> bytes:
        payload = {**good, **changes}
        return json.dumps({k: v for k, v in payload.items() if v is not _DROP}).encode()

    garbage = f"AAPL;{sequence};".encode()
    return [
        ("not_json", garbage + b"not json"),
        # Bytes that are not UTF-8, which only raw_base64 keeps exactly: a stray 0xFF, one
        # inside a JSON string, an encoded surrogate, Latin-1 text, binary garbage.
        ("not_json", variant() + b"\xff"),
        ("not_json", variant(source="sim").replace(b'"sim"', b'"s\xffm"')),
        ("not_json", variant(source="sim").replace(b'"sim"', b'"s\xed\xa0\x80m"')),
        ("not_json", json.dumps({**good, "source": "café"}, ensure_ascii=False).encode("latin-1")),
        ("not_json", b"\xff\xfe\x00" + garbage + b"\x00\x80"),
        # Valid text that reads the same as the stray byte's escape in the readable `raw`.
        ("not_json", garbage + b"\\xff"),
        ("not_json", garbage + b"\xff"),
        ("missing_field", variant(price=_DROP)),
        ("extra_field", variant(exchange="XNAS")),
        ("wrong_type", variant(size=str(sequence)).replace(b"simulator", "Zürich".encode())),
        ("non_positive_price", variant(price=-1.0 * (sequence + 1))),
        ("non_finite_price", variant(price=1.0).replace(b'"price": 1.0', b'"price": NaN')),
        ("negative_volume", variant(size=-sequence - 1)),
        ("future_event_time", variant(event_time=future.isoformat())),
        ("unknown_schema_version", variant(schema_version=2)),
        ("unknown_schema_version", variant(schema_version=True)),
        # A foreign client's object with a key twice: readers would keep the last silently.
        ("duplicate_key", b'{"size":1,' + variant()[1:]),
        ("invalid_value", variant(symbol="=")),
        ("empty_value", None),
        ("empty_value", b""),
    ]


_DROP = object()
_SAMPLE = bad_values(0, datetime(2024, 1, 1, tzinfo=UTC))
BAD_VALUES = len(_SAMPLE)
BAD_REASONS = tuple(dict.fromkeys(reason for reason, _ in _SAMPLE))


@dataclass
class Mixed:
    """What was sent: the good ticks by sequence number, the bad values with their reasons."""

    messages: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    good: dict[int, RealtimeTick] = field(default_factory=dict)
    bad: Counter[tuple[str, bytes | None]] = field(default_factory=Counter)

    @property
    def bad_by_reason(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for (reason, _raw), count in self.bad.items():
            counts[reason] += count
        return counts


def mixed_ticks(good: int, bad: int, start: datetime, step: timedelta, seed: int = 7) -> Mixed:
    """`good` ticks from `start` every `step`, with `bad` malformed values mixed in at random."""
    rng = random.Random(seed)
    mixed = Mixed()
    slots = [True] * good + [False] * bad
    rng.shuffle(slots)
    sequence = 0
    bad_index = 0
    for is_good in slots:
        moment = start + step * sequence
        symbol = SYMBOLS[rng.randrange(len(SYMBOLS))]
        if is_good:
            sequence += 1
            record = tick(sequence, moment, symbol)
            mixed.good[sequence] = record
            mixed.messages.append((symbol.encode(), record.to_json()))
        else:
            reason, value = bad_values(10_000_000 + bad_index, moment)[bad_index % BAD_VALUES]
            bad_index += 1
            mixed.bad[(reason, value)] += 1
            mixed.messages.append((symbol.encode(), value))
    return mixed


def good_ticks(count: int, start: datetime, step: timedelta) -> Iterator[tuple[bytes, bytes]]:
    for sequence in range(1, count + 1):
        record = tick(sequence, start + step * sequence, SYMBOLS[sequence % len(SYMBOLS)])
        yield record.symbol.encode(), record.to_json()


def landed_sequences(lake_view, kind: str = "realtime") -> Counter[int]:
    """How many times each tick sequence number is in the raw zone."""
    prefix = lake.RAW_REALTIME if kind == "realtime" else lake.RAW_HISTORICAL
    return Counter(line["sequence"] for _key, line in lake_view.lines(prefix + "/"))


def assert_exactly_once(lake_view, sent: int) -> None:
    """Every tick 1..sent is in the raw zone once, and each (partition, offset) once."""
    sequences = landed_sequences(lake_view)
    duplicates = {seq: n for seq, n in sequences.items() if n > 1}
    missing = set(range(1, sent + 1)) - set(sequences)
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates.items())[:5]}"
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
    assert len(sequences) == sent
    coordinates = Counter(
        (line["_partition"], line["_offset"]) for _key, line in lake_view.lines("raw/")
    )
    assert max(coordinates.values()) == 1
