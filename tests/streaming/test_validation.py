"""The landing gate: every bad-record reason of the issue, and what good records become."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stocklake.schemas import (
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
    HistoricalBar,
    RealtimeTick,
    is_symbol,
    repeated_keys,
)
from streaming.validation import REASONS, Accepted, EventClock, RecordGate, Rejected
from tests.streaming.records import RecordError, check_record, parse_record

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def tick(**changes: object) -> dict:
    payload = json.loads(
        RealtimeTick(
            symbol="AAPL",
            event_time=datetime(2024, 3, 1, 10, 15, 30, 250000, tzinfo=UTC),
            price=171.25,
            size=300,
            sequence=7,
            source="simulator",
        ).to_json()
    )
    payload.update(changes)
    return payload


def bar(**changes: object) -> dict:
    payload = json.loads(
        HistoricalBar(
            symbol="MSFT",
            ts=datetime(2024, 2, 29, tzinfo=UTC),
            interval="1d",
            open=400.0,
            high=410.5,
            low=398.25,
            close=405.0,
            adj_close=404.1,
            volume=21_000_000,
            source="csv",
            ingested_at=datetime(2024, 3, 1, 6, 0, tzinfo=UTC),
        ).to_json()
    )
    payload.update(changes)
    return payload


def repeating(payload: dict, key: str, first: object) -> bytes:
    """The payload's JSON with `key` given once more, first, with the value `first`."""
    return b"{" + json.dumps({key: first}).encode()[1:-1] + b", " + json.dumps(payload).encode()[1:]


def check(kind: str, value: bytes | dict | None) -> Accepted | Rejected:
    raw = json.dumps(value).encode() if isinstance(value, dict) else value
    return check_record(kind, raw, now=NOW, max_future=DAY)  # type: ignore[arg-type]


def test_good_tick_lands_as_its_canonical_wire_form() -> None:
    wire = RealtimeTick.model_validate(tick()).to_json()
    verdict = check("realtime", wire)
    assert isinstance(verdict, Accepted)
    assert verdict.body == wire
    assert verdict.event_time == datetime(2024, 3, 1, 10, 15, 30, 250000, tzinfo=UTC)


def test_good_bar_is_canonicalised_to_utc_with_milliseconds() -> None:
    # Same instant written with an offset and spaces: lands as the one wire form.
    raw = json.dumps(bar(ts="2024-02-29T05:00:00+05:00"), indent=1).encode()
    verdict = check("historical", raw)
    assert isinstance(verdict, Accepted)
    assert verdict.body == HistoricalBar.model_validate(bar()).to_json()
    assert b"\n" not in verdict.body
    assert verdict.event_time == datetime(2024, 2, 29, tzinfo=UTC)


def test_missing_adj_close_is_allowed_and_written_as_null() -> None:
    payload = bar()
    del payload["adj_close"]
    verdict = check("historical", payload)
    assert isinstance(verdict, Accepted)
    assert json.loads(verdict.body)["adj_close"] is None


@pytest.mark.parametrize(
    ("kind", "value", "code", "names"),
    [
        ("realtime", None, "empty_value", "no value"),
        ("realtime", b"", "empty_value", "no value"),
        ("realtime", b"AAPL,171.25,300", "not_json", "Invalid JSON"),
        ("realtime", b'{"symbol": "AAPL"', "not_json", "Invalid JSON"),
        ("realtime", b"\xff\xfe\x00garbage", "not_json", "Invalid JSON"),
        ("realtime", b"[1, 2, 3]", "not_an_object", "object"),
        ("realtime", b'"AAPL"', "not_an_object", "object"),
        ("realtime", repeating(tick(), "symbol", "MSFT"), "duplicate_key", "symbol: given"),
        ("realtime", repeating(tick(), "price", "x"), "duplicate_key", "price: given"),
        ("realtime", repeating(tick(schema_version=2), "schema_version", 1), "duplicate_key", "2"),
        ("historical", repeating(bar(), "volume", 1), "duplicate_key", "volume: given"),
        (
            "realtime",
            repeating({k: v for k, v in tick().items() if k != "size"}, "price", 1.0),
            "duplicate_key",
            "size: Field required",
        ),
        (
            "realtime",
            json.dumps(tick()).encode().replace(b'"price"', b'"pr\\u0069ce": 1.5, "price"'),
            "duplicate_key",
            "price: given",
        ),
        ("realtime", repeating(tick(), "symbol", "MSFT")[:-1], "not_json", "Invalid JSON"),
        ("realtime", tick(schema_version=2), "unknown_schema_version", "schema_version"),
        ("realtime", tick(schema_version="1"), "unknown_schema_version", "schema_version"),
        ("realtime", tick(schema_version=None), "unknown_schema_version", "schema_version"),
        ("realtime", tick(schema_version=True), "unknown_schema_version", "true is not"),
        ("realtime", tick(schema_version=False), "unknown_schema_version", "false is not"),
        ("realtime", tick(schema_version=1.0), "unknown_schema_version", "1.0 is not"),
        ("realtime", tick(schema_version=0), "unknown_schema_version", "0 is not"),
        ("historical", bar(schema_version=True), "unknown_schema_version", "schema_version"),
        ("realtime", {k: v for k, v in tick().items() if k != "price"}, "missing_field", "price"),
        (
            "realtime",
            {k: v for k, v in tick().items() if k != "schema_version"},
            "missing_field",
            "schema_version",
        ),
        ("historical", bar(dividend=0.24), "extra_field", "dividend"),
        ("realtime", tick(price="171.25"), "wrong_type", "price"),
        ("realtime", tick(size=300.0), "wrong_type", "size"),
        ("realtime", tick(size=True), "wrong_type", "size"),
        ("realtime", tick(event_time=1709288130), "wrong_type", "event_time"),
        ("realtime", tick(event_time="2024-03-01"), "wrong_type", "event_time"),
        ("historical", bar(interval="1w"), "wrong_type", "interval"),
        ("historical", bar(interval=5), "wrong_type", "interval"),
        ("historical", bar(source="bloomberg"), "wrong_type", "source"),
        ("realtime", tick(price=0), "non_positive_price", "price"),
        ("historical", bar(low=-1.5), "non_positive_price", "low"),
        ("historical", bar(volume=-100), "negative_volume", "volume"),
        ("realtime", tick(size=-1), "negative_volume", "size"),
        ("historical", bar(high=390.0, low=399.0), "high_below_low", "OHLC"),
        ("historical", bar(close=420.0), "ohlc_inconsistent", "OHLC"),
        ("realtime", tick(symbol="aapl"), "invalid_value", "symbol"),
        ("realtime", tick(symbol="="), "invalid_value", "symbol"),
        ("realtime", tick(symbol=".."), "invalid_value", "symbol"),
        ("realtime", tick(symbol="-X"), "invalid_value", "symbol"),
        ("realtime", tick(symbol="1AAPL"), "invalid_value", "symbol"),
        ("realtime", tick(symbol="A^B"), "invalid_value", "symbol"),
        ("realtime", tick(symbol="AAPL\n"), "invalid_value", "symbol"),
        ("realtime", tick(symbol="A" * 17), "invalid_value", "symbol"),
        ("realtime", tick(symbol=""), "invalid_value", "symbol"),
        ("realtime", tick(event_time="2024-03-01T10:15:30"), "invalid_value", "timezone"),
        ("realtime", tick(event_time="2024-03-02T12:00:01Z"), "future_event_time", "2024-03-02"),
        ("historical", bar(ts="2024-03-05T00:00:00Z"), "future_event_time", "2024-03-05"),
    ],
)
def test_bad_records_get_a_reason_naming_the_problem(
    kind: str, value: bytes | dict | None, code: str, names: str
) -> None:
    verdict = check(kind, value)
    assert isinstance(verdict, Rejected), verdict
    assert verdict.code == code, verdict
    assert code in REASONS
    assert names in verdict.detail
    assert verdict.reason.startswith(f"{code}: ")


@pytest.mark.parametrize(
    "symbol", ["AAPL", "A", "^GSPC", "BRK.B", "BRK-B", "EURUSD=X", "ES=F", "A" * 16]
)
def test_symbols_start_with_a_letter_or_caret(symbol: str) -> None:
    verdict = check("realtime", tick(symbol=symbol))
    assert isinstance(verdict, Accepted), verdict
    assert is_symbol(symbol)
    assert parse_record("realtime", tick(symbol=symbol)).symbol == symbol


def test_schema_version_is_an_integer_not_a_boolean_everywhere() -> None:
    for version in (True, 1.0, "1", 2):
        with pytest.raises(RecordError, match="schema_version"):
            parse_record("realtime", tick(schema_version=version))
        with pytest.raises(ValueError, match="schema_version"):
            RealtimeTick.model_validate(tick(schema_version=version))
    assert parse_record("realtime", tick(schema_version=1)).schema_version == 1


def test_the_readme_lists_every_reason_code_in_order() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    places = [readme.find(f"`{code}`") for code in REASONS]
    assert -1 not in places, [code for code, at in zip(REASONS, places, strict=True) if at < 0]
    assert places == sorted(places)


def test_commas_inside_strings_are_not_repeated_keys() -> None:
    # More commas than keys sends the record to the exact check, which finds no repeat.
    value = tick(source="sim,feed,a,b,c,d,e,f,g,h")
    assert isinstance(check("realtime", value), Accepted)
    assert parse_record("realtime", json.dumps(value)).source == value["source"]


def test_the_shared_parser_refuses_repeated_keys_too() -> None:
    with pytest.raises(RecordError, match="symbol: given more than once"):
        parse_record("realtime", repeating(tick(), "symbol", "AAPL"))
    assert repeated_keys(repeating(bar(), "low", 1)) == ["low"]
    assert repeated_keys(b'{"a": {"b": 1, "b": 2}, "a": 3, "a": 4}') == ["b", "a"]
    assert repeated_keys(b'{"a": 1, "b": 2}') == []
    assert repeated_keys(b"\xff not json") == []
    assert repeated_keys(b"[" * 100_000) == []


def test_the_symbol_rule_is_the_models_rule() -> None:
    for text in ("=", "..", "1AAPL", "A^B", "AAPL\n", "A" * 17, "", "aapl", "A B"):
        assert not is_symbol(text), text
        with pytest.raises(RecordError, match="symbol"):
            parse_record("realtime", tick(symbol=text))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_prices_are_their_own_reason(literal: bytes) -> None:
    raw = json.dumps(tick(price=1.0)).encode().replace(b'"price": 1.0', b'"price": ' + literal)
    verdict = check("realtime", raw)
    assert isinstance(verdict, Rejected)
    assert verdict.code == "non_finite_price"
    assert "price" in verdict.detail


def test_several_problems_are_all_named_and_the_most_basic_is_the_code() -> None:
    verdict = check("realtime", tick(price=-1.0, size="many", extra=1))
    assert isinstance(verdict, Rejected)
    assert verdict.code == "extra_field"
    for field in ("price", "size", "extra"):
        assert field in verdict.detail


def test_event_time_limit_is_relative_to_the_given_clock() -> None:
    raw = json.dumps(tick(event_time="2024-03-01T13:00:00Z")).encode()
    assert isinstance(check_record("realtime", raw, now=NOW, max_future=DAY), Accepted)
    verdict = check_record("realtime", raw, now=NOW, max_future=timedelta(minutes=30))
    assert isinstance(verdict, Rejected) and verdict.code == "future_event_time"


def test_everything_accepted_also_passes_the_shared_contract() -> None:
    # The gate is stricter than parse_record, never looser.
    for value in (tick(), bar(), tick(event_time="2024-03-01T05:00:00-05:00")):
        kind = "realtime" if "price" in value else "historical"
        verdict = check(kind, value)
        assert isinstance(verdict, Accepted)
        assert parse_record(kind, verdict.body).to_json() == verdict.body  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "value", "code", "names"),
    [
        ("realtime", tick(size=2**63), "volume_out_of_range", "size"),
        ("realtime", tick(size=MAX_VOLUME + 1), "volume_out_of_range", "size"),
        ("historical", bar(volume=2**62), "volume_out_of_range", "volume"),
        ("realtime", tick(price=MAX_PRICE * 1.5), "price_out_of_range", "price"),
        ("realtime", tick(price=MIN_PRICE / 10), "price_out_of_range", "price"),
        ("realtime", tick(price=0.0), "non_positive_price", "price"),
        ("historical", bar(high=1e300), "price_out_of_range", "high"),
        ("realtime", tick(sequence=2**63), "value_out_of_range", "sequence"),
        ("realtime", tick(event_time="1969-12-31T23:59:59Z"), "early_event_time", "event_time"),
        ("historical", bar(ts="0001-01-01T00:00:00Z"), "early_event_time", "ts"),
    ],
)
def test_values_beyond_the_contracts_bounds_are_quarantined(
    kind: str, value: dict, code: str, names: str
) -> None:
    verdict = check(kind, value)
    assert isinstance(verdict, Rejected), verdict
    assert (verdict.code, code in REASONS) == (code, True), verdict
    assert names in verdict.detail


def test_the_edge_values_of_the_bounds_are_accepted() -> None:
    edges = [
        tick(size=MAX_VOLUME, price=MAX_PRICE, sequence=2**63 - 1),
        tick(size=0, price=MIN_PRICE, event_time="1970-01-01T00:00:00Z"),
    ]
    for value in edges:
        assert isinstance(check("realtime", value), Accepted), value
    wide = bar(open=MIN_PRICE, low=MIN_PRICE, high=MAX_PRICE, close=MAX_PRICE, volume=MAX_VOLUME)
    assert isinstance(check("historical", wide), Accepted)


LATER = datetime(2024, 3, 10, tzinfo=UTC)  # the landing clock, after every tick below


def _gate_run(ticks: list[dict], max_ahead: timedelta = timedelta(minutes=15)) -> list[str]:
    """Each tick's verdict code ('ok' when accepted) through one run's gates and clock."""
    clock = EventClock(max_ahead)
    codes = []
    for payload in ticks:
        gate = RecordGate("realtime", now=LATER, max_future=DAY, clock=clock)
        verdict = gate.check(json.dumps(payload).encode())
        codes.append("ok" if isinstance(verdict, Accepted) else verdict.code)
    return codes


def _at(start: datetime, seconds: float, **changes: object) -> dict:
    return tick(event_time=(start + timedelta(seconds=seconds)).isoformat(), **changes)


def test_a_tick_far_ahead_of_the_stream_is_held_back_and_the_rest_lands() -> None:
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    ticks = [_at(start, n) for n in range(5)]
    ticks.append(_at(start, 20 * 3600, symbol="MSFT"))  # inside --max-future, 20 h ahead
    ticks += [_at(start, 5 + n) for n in range(1000)]
    codes = _gate_run(ticks)
    assert codes.count("ahead_of_stream") == 1 and codes[5] == "ahead_of_stream"
    assert "ahead_of_stream" in REASONS
    clock = EventClock(timedelta(minutes=15))
    gate = RecordGate("realtime", now=NOW + DAY, max_future=DAY, clock=clock)
    gate.check(json.dumps(ticks[0]).encode())
    verdict = gate.check(json.dumps(ticks[5]).encode())
    assert isinstance(verdict, Rejected)
    assert "2024-03-02T05:00:00.000Z" in verdict.detail and "15:00" in verdict.detail


def test_the_next_sessions_first_ticks_land() -> None:
    # Monday 2024-03-04, last ticks before the close; Tuesday's session opens 14:30 UTC.
    start = datetime(2024, 3, 4, 20, 59, tzinfo=UTC)
    tuesday_open = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    ticks = [_at(start, n) for n in range(3)] + [_at(tuesday_open, n) for n in range(5)]
    assert _gate_run(ticks) == ["ok"] * 8
    # Ahead by as much but before the open, or well into the session: held back.
    assert _gate_run([_at(start, 0), _at(tuesday_open, -3600)]) == ["ok", "ahead_of_stream"]
    assert _gate_run([_at(start, 0), _at(tuesday_open, 3600)]) == ["ok", "ahead_of_stream"]


def test_a_jump_outside_a_session_lands_from_its_second_tick() -> None:
    start = datetime(2024, 3, 1, 20, 59, tzinfo=UTC)  # a Friday: the jump lands on Saturday
    overnight = 17.5 * 3600
    ticks = [_at(start, n) for n in range(3)] + [_at(start, overnight + n) for n in range(5)]
    assert _gate_run(ticks) == ["ok"] * 3 + ["ahead_of_stream"] + ["ok"] * 4
    # The held-back tick read again (a replayed poll) does not confirm itself.
    again = [_at(start, 0), _at(start, overnight), _at(start, overnight)]
    assert _gate_run(again) == ["ok", "ahead_of_stream", "ahead_of_stream"]
    # A quiet symbol is not ahead of the stream: other symbols' ticks keep the clock going.
    quiet = [_at(start, 0, symbol="QUIET")] + [_at(start, 60 * n) for n in range(1, 60)]
    assert _gate_run(quiet + [_at(start, 3600, symbol="QUIET")]) == ["ok"] * 61


def _tick_variants(count: int, seed: int) -> list[bytes]:
    """Ticks near and past every bound of the canonical form: numbers in other spellings,
    strings JSON escapes, times in other forms, repeated, missing and extra keys."""
    import random

    rnd = random.Random(seed)
    floats = [MIN_PRICE, 1e-5, 1e-4, 0.1 + 0.2, MAX_PRICE, MAX_PRICE + 1, 410.97, 600.0,
              5e-324, 2.0**53, 1e16, 12.345678901234567, 0.5]  # fmt: skip
    ints = [0, -1, 1, 600, MAX_VOLUME, MAX_VOLUME + 1, 2**63 - 1, 2**63, 2**64]
    texts = ["simulator", "", "x" * 32, "x" * 33, "é", 'a"b', "a\\b", "\u2028", "A^", "^GSPC",
             "nvda", "BRK.B", "A" * 16, "A" * 17, "A\n", "1ABC", "a/b", "\x7f"]  # fmt: skip
    times = ["2024-03-01T10:15:30.250Z", "2024-03-01T10:15:30Z", "2024-03-01T10:15:30.250+00:00",
             "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "2024-02-30T00:00:00.000Z",
             "2024-03-01T24:00:00.000Z", "2024-03-01T10:15:30.250123Z", "2024-03-01 10:15:30.250Z",
             "0001-01-01T00:00:00.000Z", "2024-03-01T10:15:60.000Z"]  # fmt: skip
    values = []
    for _ in range(count):
        changes: dict[str, object] = {}
        if rnd.random() < 0.5:
            changes["price"] = rnd.choice(floats + [round(rnd.uniform(0, 2e7), rnd.randint(0, 8))])
        for name, choices in (("size", ints), ("sequence", ints), ("symbol", texts),
                              ("source", texts), ("event_time", times)):  # fmt: skip
            if rnd.random() < 0.3:
                changes[name] = rnd.choice(choices)
        if rnd.random() < 0.1:
            changes["schema_version"] = rnd.choice([1, 2, True, 1.0, 0])
        payload = tick(**changes)
        spelling = rnd.random()
        if spelling < 0.6:
            values.append(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        elif spelling < 0.8:
            values.append(json.dumps(payload, separators=(",", ":")).encode())
        else:
            values.append(json.dumps(payload).encode())
    return values


def test_the_fast_path_for_canonical_ticks_gives_the_models_verdict() -> None:
    from streaming.validation import _canonical_tick

    far = datetime(9999, 1, 1, tzinfo=UTC)  # no time is in the future of this clock
    gate = RecordGate("realtime", now=far, max_future=timedelta(minutes=5))
    taken = 0
    for value in _tick_variants(6_000, seed=14):
        fast = _canonical_tick(value)
        model = gate._validate_model(value)
        if fast is not None:
            taken += 1
            assert fast == model, value
            assert fast.event_time.tzinfo == model.event_time.tzinfo
    assert taken > 500  # the variants do reach the fast path
