"""The landing gate: one Kafka value in, a landed line body or a quarantine reason out.

Pure: no I/O, the clock is a parameter. Validation is the wire contract of
`stocklake.schemas` applied strictly to JSON (a number sent as a string, a
bool for an int, a float for an int are wrong types here), plus the checks a
landing zone needs: no key given twice, the schema version present and known,
and the event time not far in the future.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, get_args

from pydantic import AwareDatetime, ValidationError

from stocklake.schemas import (
    EARLIEST_TIME,
    INT64_MAX,
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
    RECORD_TYPES,
    SCHEMA_VERSION,
    SYMBOL_PATTERN,
    Price,
    RealtimeTick,
    RecordKind,
    Volume,
    format_ts,
    repeated_keys,
)
from stocklake.trading_calendar import last_open


def _fields_declared_as(alias: Any) -> frozenset[str]:
    """The record fields declared with one of the core's annotated types (`Price`, ...)."""
    base, info = get_args(alias)[:2]
    names = set()
    for model in RECORD_TYPES.values():
        for name, declared in model.model_fields.items():
            same = declared.annotation is base and declared.metadata == info.metadata
            if same or alias in get_args(declared.annotation):  # Price | None
                names.add(name)
    return frozenset(names)


PRICE_FIELDS = _fields_declared_as(Price)
VOLUME_FIELDS = _fields_declared_as(Volume)
TIME_FIELDS = frozenset(
    name
    for model in RECORD_TYPES.values()
    for name, declared in model.model_fields.items()
    if declared.annotation is AwareDatetime
)
# pydantic-core's error types for a number or a time outside a Field's bounds.
_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
# Error types of the record as a whole (an empty `loc`), by reason.
_RECORD_ERRORS = {
    "json_invalid": "not_json",
    "json_type": "not_json",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
}
# A JSON value of the wrong type: pydantic-core names these `<type>_type` ("int_type"),
# strings that do not parse as the type `<type>_parsing`; `enum` is a value outside an
# allowed list (Interval, HistoricalSource), reported as the wrong type as a Literal was.
_WRONG_TYPE_SUFFIXES = ("_type", "_parsing")
_WRONG_TYPE = frozenset({"enum", "literal_error"})

# Reason codes, most fundamental first: a record gets the first that applies.
REASONS = (
    "empty_value",
    "not_json",
    "not_an_object",
    "duplicate_key",
    "unknown_schema_version",
    "missing_field",
    "extra_field",
    "wrong_type",
    "non_finite_price",
    "non_positive_price",
    "price_out_of_range",
    "negative_volume",
    "volume_out_of_range",
    "high_below_low",
    "ohlc_inconsistent",
    "value_out_of_range",
    "early_event_time",
    "invalid_value",
    "future_event_time",
    "ahead_of_stream",
)
_RANK = {reason: rank for rank, reason in enumerate(REASONS)}


class Accepted(NamedTuple):
    """A good record: its canonical JSON and the UTC time that places it in the lake."""

    body: bytes
    event_time: datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    """A bad record: a reason code (for counting) and a detail naming the fields."""

    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


class EventClock:
    """The latest event time one landing run has landed, kept across its polls.

    A tick more than `max_ahead` past it is held back (`ahead_of_stream`): one bad clock
    would otherwise move the stream job's watermark (the latest event time it has seen,
    over all symbols) and make every ordinary tick after it late. The run's latest, not
    each symbol's: a quiet symbol's next tick is not ahead of the stream. A tick within
    `max_ahead` after an exchange open (XNYS) later than the latest tick starts a new
    session: it lands. Otherwise two held-back ticks in a row, the second later but within
    `max_ahead` of the first, mean the feed really moved on: the second lands (the first
    stays in quarantine).
    """

    __slots__ = ("jump", "latest", "limit", "max_ahead")

    def __init__(self, max_ahead: timedelta) -> None:
        if max_ahead <= timedelta(0):
            raise ValueError(f"max_ahead must be positive, got {max_ahead}")
        self.latest: datetime | None = None
        self.jump: datetime | None = None
        # latest + max_ahead as of the last slow path: a tick at or before it needs no
        # arithmetic (RecordGate's fast path); a stale, lower limit only sends it here.
        self.limit = datetime.min.replace(tzinfo=UTC)
        self.max_ahead = max_ahead

    def ahead(self, event_time: datetime) -> datetime | None:
        """The latest landed event time when this one is too far ahead of it, else None
        (and the tick counts as landed)."""
        latest = self.latest
        if latest is None or event_time - latest <= self.max_ahead:
            if latest is None or event_time > latest:
                self.latest = latest = event_time
            self.limit = latest + self.max_ahead
            self.jump = None
            return None
        jump = self.jump
        # Later than the held-back one, not the same one read again (a replayed poll); or
        # the first ticks of a session that opened after the latest tick (an overnight gap).
        if (jump is not None and jump < event_time <= jump + self.max_ahead) or (
            _new_session(latest, event_time, self.max_ahead)
        ):
            self.latest, self.jump = event_time, None
            self.limit = event_time + self.max_ahead
            return None
        self.jump = event_time
        return latest


def _new_session(latest: datetime, event_time: datetime, max_ahead: timedelta) -> bool:
    """Whether `event_time` is within `max_ahead` after a session open later than `latest`."""
    opened = last_open(event_time)
    return opened is not None and latest < opened and event_time - opened <= max_ahead


class RecordGate:
    """The gate of one kind on one clock reading (the consumer's hot path).

    `clock`, when given (real-time ticks), holds back a tick far ahead of the latest one
    landed; it outlives the gate, so one landing run passes the same one to every gate.
    """

    def __init__(
        self,
        kind: RecordKind,
        *,
        now: datetime,
        max_future: timedelta,
        clock: EventClock | None = None,
    ) -> None:
        model = RECORD_TYPES[RecordKind(kind)]
        self._validate = model.__pydantic_validator__.validate_json
        self._serialize = model.__pydantic_serializer__.to_json
        self._now = now
        self._max_future = max_future
        self._latest = now + max_future
        self._clock = clock
        self._fast = kind == RecordKind.REALTIME

    def check(self, value: bytes | None) -> Accepted | Rejected:
        """Validate one Kafka value against the wire contract of the gate's kind."""
        if not value:
            return Rejected("empty_value", "the Kafka message has no value")
        # A canonical tick needs no model: the fast path proves it is one, else pydantic decides.
        verdict = (self._fast and _canonical_tick(value)) or self._validate_model(value)
        if verdict.__class__ is Rejected:
            return verdict  # type: ignore[return-value]
        event_time = verdict[1]  # type: ignore[index]
        if event_time > self._latest:
            return Rejected(
                "future_event_time",
                f"event time {format_ts(event_time)} is more than {self._max_future} "
                f"after the landing clock {format_ts(self._now)}",
            )
        clock = self._clock
        if clock is not None:
            # Fast path: within the limit, nothing held back; else the clock decides.
            if event_time <= clock.limit and clock.jump is None:
                if event_time > clock.latest:  # type: ignore[operator]  # set with limit
                    clock.latest = event_time
            elif latest := clock.ahead(event_time):
                return Rejected(
                    "ahead_of_stream",
                    f"event time {format_ts(event_time)} is more than {clock.max_ahead} "
                    f"after the latest tick landed in this run ({format_ts(latest)})",
                )
        return verdict  # type: ignore[return-value]

    def _validate_model(self, value: bytes) -> Accepted | Rejected:
        """The wire contract through the record's pydantic model: a canonical body or why not."""
        try:
            record = self._validate(value, strict=True)
        except ValidationError as error:
            return _explain(value, error.errors(include_url=False))
        present = record.__pydantic_fields_set__
        body = self._serialize(record)
        # JSON readers keep a repeated key's last value. Cheap tests first: the canonical form
        # never repeats a key, and n distinct keys need only n - 1 commas; a value failing
        # both (a repeat, or commas inside strings) is read again to look for repeats.
        if (
            body != value
            and value.count(b",") >= len(present)
            and (repeated := repeated_keys(value))
        ):
            return Rejected("duplicate_key", _repeated(repeated))
        # The model would default a missing version to 1; on the wire it must be said.
        if "schema_version" not in present:
            return Rejected("missing_field", "schema_version: Field required")
        return Accepted(body, record.event_time)


# A tick in its canonical wire form (what `RealtimeTick.to_json` writes), field by field in
# the model's order: numbers without a sign, exponent or leading zero; strings of printable
# ASCII with nothing JSON would escape; the one timestamp form (`format_ts`).
_TICK_FIELDS = ("schema_version", "symbol", "event_time", "price", "size", "sequence", "source")
if tuple(RealtimeTick.model_fields) != _TICK_FIELDS:
    raise ImportError("_CANONICAL_TICK must list RealtimeTick's fields in the model's order")
_SOURCE = RealtimeTick.model_fields["source"].metadata
_CANONICAL_TICK = re.compile(
    (
        f'\\{{"schema_version":{SCHEMA_VERSION},"symbol":"({SYMBOL_PATTERN[1:-1]})",'
        r'"event_time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","price":(\d+\.\d+),'
        r'"size":(0|[1-9]\d{0,18}),"sequence":(0|[1-9]\d{0,18}),'
        f'"source":"([\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]{{{_SOURCE[0].min_length},'
        f'{_SOURCE[1].max_length}}})"\\}}'
    ).encode()
)


def _canonical_tick(value: bytes) -> Accepted | None:
    """A tick already in its canonical wire form and within every bound of `RealtimeTick`;
    None when it is not, or not surely (the model decides then).

    Equal to the model's verdict by construction: the value must be byte for byte the
    canonical JSON of its own fields, so no key is repeated, missing or extra, and no
    number or string is written in another form than the model would write it.
    """
    match = _CANONICAL_TICK.fullmatch(value)
    if match is None:
        return None
    _symbol, stamp, number, size, sequence, _source = match.groups()
    price = float(number)
    if not (
        MIN_PRICE <= price <= MAX_PRICE
        and repr(price).encode() == number  # the shortest form, as pydantic-core writes it
        and int(size) <= MAX_VOLUME
        and int(sequence) <= INT64_MAX
    ):
        return None
    try:
        moment = datetime.fromisoformat(stamp.decode())
    except ValueError:  # a day or hour out of range: the model explains it
        return None
    if moment < EARLIEST_TIME:
        return None
    return Accepted(value, moment)


def _explain(value: bytes, errors: Iterable[dict[str, Any]]) -> Rejected:
    problems: list[tuple[str, str]] = []
    for problem in errors:
        where = ".".join(str(part) for part in problem["loc"]) or "record"
        code = _classify(problem)
        problems.append((code, f"{where}: {_message(code, problem)}"))
    code = min((code for code, _ in problems), key=_RANK.__getitem__)
    detail = "; ".join(detail for _, detail in problems)
    # An object whose problems rank below a repeated key: the repeat is the reason.
    if _RANK[code] > _RANK["duplicate_key"] and (repeated := repeated_keys(value)):
        return Rejected("duplicate_key", f"{_repeated(repeated)}; {detail}")
    return Rejected(code, detail)


def _repeated(keys: list[str]) -> str:
    return "; ".join(
        f"{key}: given more than once (a JSON reader would keep only the last value)"
        for key in keys
    )


def _message(code: str, problem: dict[str, Any]) -> str:
    if code == "unknown_schema_version":
        # pydantic would say "less than or equal to 1" or "a valid integer": name the version.
        sent = json.dumps(problem.get("input"), default=str)
        return f"{sent} is not a schema version this lake reads (the integer {SCHEMA_VERSION})"
    return problem["msg"]


def _classify(problem: dict[str, Any]) -> str:
    """The reason code of one pydantic error, from its `type`, the field and the input."""
    kind = problem["type"]
    loc = problem["loc"]
    if not loc and kind == "value_error":
        # The one model-level check (HistoricalBar's OHLC validator); its input is the
        # decoded object, which tells which rule failed.
        return "high_below_low" if _high_below_low(problem.get("input")) else "ohlc_inconsistent"
    if not loc and kind in _RECORD_ERRORS:
        return _RECORD_ERRORS[kind]
    field = str(loc[0]) if loc else ""
    if field == "schema_version":
        return "missing_field" if kind == "missing" else "unknown_schema_version"
    if kind == "missing":
        return "missing_field"
    if kind == "extra_forbidden":
        return "extra_field"
    if kind in _BOUNDS or kind == "finite_number":
        return _out_of_bounds(field, kind, problem.get("input"))
    if kind in _WRONG_TYPE or kind.endswith(_WRONG_TYPE_SUFFIXES):
        return "wrong_type"
    return "invalid_value"


def _out_of_bounds(field: str, kind: str, value: Any) -> str:
    """A number or a time outside its Field's bounds (or a price that is not finite)."""
    if field in PRICE_FIELDS:
        if kind == "finite_number" or (isinstance(value, float) and not math.isfinite(value)):
            return "non_finite_price"
        positive = isinstance(value, int | float) and value > 0
        return "price_out_of_range" if positive else "non_positive_price"
    if field in VOLUME_FIELDS:
        return "negative_volume" if kind == "greater_than_equal" else "volume_out_of_range"
    if field in TIME_FIELDS and kind == "greater_than_equal":
        return "early_event_time"
    return "value_out_of_range"


def _high_below_low(value: Any) -> bool:
    # The model-level error's input is the decoded JSON object (numbers may be ints).
    fields = value if isinstance(value, dict) else {}
    high, low = fields.get("high"), fields.get("low")
    numbers = (int, float)
    return isinstance(high, numbers) and isinstance(low, numbers) and high < low
