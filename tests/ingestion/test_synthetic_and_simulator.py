"""Synthetic GBM bars and the tick simulator: determinism, consistency, shape, clocks."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, date, datetime, timedelta

import pytest

from ingestion.errors import ProduceError
from ingestion.gbm import bundled_last_close, start_price, u_shape
from ingestion.market_hours import (
    DateRange,
    DateRangeError,
    bar_starts,
    parse_period,
    resolve_range,
    session_fraction,
)
from ingestion.producer import in_event_time_order
from ingestion.realtime_plan import plan_realtime
from ingestion.simulator import (
    ACCELERATED_SPEEDUP,
    Pacer,
    accelerated_start,
    simulate_ticks,
    tick_spacing,
)
from ingestion.synthetic import synthetic_bars
from tests.streaming.records import parse_record

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WEEK = DateRange(date(2024, 3, 4), date(2024, 3, 11))  # Mon..Sun, DST starts on the 10th


def _bars(**overrides):
    args = {"symbols": ["AAPL", "ZZZ"], "days": WEEK, "interval": "1d", "seed": 7}
    args.update(overrides)
    return list(
        synthetic_bars(
            args.pop("symbols"),
            args.pop("days"),
            args.pop("interval"),
            seed=args.pop("seed"),
            ingested_at=NOW,
            **args,
        )
    )


def test_synthetic_bars_are_deterministic_by_seed():
    assert _bars() == _bars()
    assert [b.close for b in _bars()] != [b.close for b in _bars(seed=8)]
    # A symbol's path does not depend on which other symbols are asked for.
    alone = [b for b in _bars(symbols=["ZZZ"])]
    assert alone == [b for b in _bars() if b.symbol == "ZZZ"]


def test_bars_are_sent_in_time_order_each_symbol_in_its_own_order():
    bars = _bars(symbols=["ZZZ", "AAPL", "MSFT"])  # a source's order: one symbol after another
    assert [b.symbol for b in bars[:2]] == ["ZZZ", "ZZZ"]
    sent = in_event_time_order(bars)
    assert sorted(sent, key=id) == sorted(bars, key=id)  # the same bars, none lost
    keys = [(b.ts, b.symbol) for b in sent]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for symbol in ("ZZZ", "AAPL", "MSFT"):  # one Kafka partition each: order kept
        assert [b for b in sent if b.symbol == symbol] == [b for b in bars if b.symbol == symbol]


@pytest.mark.parametrize("interval", ["1d", "1h", "5m", "1m"])
def test_synthetic_bars_grid_and_ohlc(interval):
    bars = _bars(interval=interval)
    per_day = {"1d": 1, "1h": 7, "5m": 78, "1m": 390}[interval]
    assert len(bars) == 2 * 5 * per_day  # weekdays only
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume > 0 and bar.source == "synthetic" and bar.adj_close is None
    assert parse_record("historical", bars[0].to_json()) == bars[0]
    if interval != "1d":
        # Bars tile the session: 09:30 New York is 14:30 UTC before DST, 13:30 after.
        monday = [b.ts for b in bars if b.symbol == "AAPL" and b.ts.day == 4]
        assert monday[0] == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
        assert monday[-1] < datetime(2024, 3, 4, 21, 0, tzinfo=UTC)


def test_synthetic_starts_from_bundled_close_when_known():
    assert bundled_last_close("AAPL") == pytest.approx(132.69)
    assert bundled_last_close("ZZZ") is None
    assert 20 <= start_price("ZZZ", 1) <= 500
    first = _bars(symbols=["AAPL"])[0]
    assert first.open == pytest.approx(132.69, rel=0.1)


def test_synthetic_intraday_volume_is_u_shaped():
    bars = _bars(
        symbols=["AAPL"], interval="5m", days=DateRange(date(2024, 1, 1), date(2024, 4, 1))
    )
    by_slot: dict[int, list[int]] = {}
    for bar in bars:
        by_slot.setdefault(bar.ts.hour * 60 + bar.ts.minute, []).append(bar.volume)
    slots = [statistics.mean(v) for _k, v in sorted(by_slot.items())]
    ends = statistics.mean(slots[:6] + slots[-6:])
    assert ends > 1.8 * statistics.mean(slots[33:45])


def test_bar_grid_rules():
    assert bar_starts(date(2024, 7, 1), "1d") == [datetime(2024, 7, 1, tzinfo=UTC)]
    hours = bar_starts(date(2024, 7, 1), "1h")
    assert hours[0] == datetime(2024, 7, 1, 13, 30, tzinfo=UTC) and len(hours) == 7


def test_date_range_rules():
    today = date(2026, 1, 15)
    assert parse_period("5d", today) == DateRange(date(2026, 1, 11), date(2026, 1, 16))
    assert parse_period("1mo", today) == DateRange(date(2025, 12, 16), date(2026, 1, 16))
    assert parse_period("ytd", today).start == date(2026, 1, 1)
    assert resolve_range(None, None, None, today) is None
    with pytest.raises(DateRangeError, match="either --period or --start/--end"):
        resolve_range(date(2026, 1, 1), None, "5d", today)
    with pytest.raises(DateRangeError, match="empty date range"):
        resolve_range(date(2026, 1, 2), date(2026, 1, 2), None, today)
    with pytest.raises(DateRangeError, match="--period 'fortnight'"):
        parse_period("fortnight", today)


def _ticks(count=2000, **overrides):
    args = {"seed": 3, "start": accelerated_start(date(2024, 3, 8)), "count": count}
    args.update(overrides)
    return list(simulate_ticks(["AAPL", "MSFT", "ZZZ"], **args))


def test_ticks_are_deterministic_and_valid():
    assert _ticks() == _ticks()
    assert _ticks() != _ticks(seed=4)
    for tick in _ticks(50):
        assert parse_record("realtime", tick.to_json()) == tick
        assert tick.source == "simulator" and tick.size % 100 == 0 and tick.size > 0


def test_tick_sequences_count_per_symbol_from_one():
    ticks = _ticks()
    for symbol in ("AAPL", "MSFT", "ZZZ"):
        sequence = [t.sequence for t in ticks if t.symbol == symbol]
        assert sequence == list(range(1, len(sequence) + 1))
    assert ticks[0].price == pytest.approx(132.69, rel=0.01)  # bundled last close


def test_accelerated_clock_spacing_and_session_rollover():
    assert tick_spacing(1000, "accelerated") == pytest.approx(0.39)
    # One session is 23,400 s: at any rate it replays in ~60 s of wall time.
    rate = 100
    spacing = tick_spacing(rate, "accelerated")
    per_session = round(23_400 / spacing)
    assert per_session / rate == pytest.approx(60, abs=0.5)
    ticks = _ticks(per_session + 10, tick_seconds=spacing)
    gaps = {
        round((b.event_time - a.event_time).total_seconds(), 6)
        for a, b in itertools.pairwise(ticks)
    }
    assert ticks[0].event_time == datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # Friday open
    assert ticks[per_session - 1].event_time < datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
    # After Friday's close the replay moves to Monday's open (DST: 13:30 UTC).
    assert ticks[per_session].event_time == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)
    assert gaps - {spacing} == {
        (
            datetime(2024, 3, 11, 13, 30, tzinfo=UTC) - ticks[per_session - 1].event_time
        ).total_seconds()
    }
    # Fifteen-minute windows fill in about 2.3 s of wall time at that speed.
    fifteen_minutes_wall = 15 * 60 / ACCELERATED_SPEEDUP
    assert fifteen_minutes_wall == pytest.approx(2.31, abs=0.01)


def test_tick_sizes_are_u_shaped_over_the_session():
    ticks = _ticks(12_000, tick_seconds=1.95)  # one session
    first, middle, last = [], [], []
    for tick in ticks:
        fraction = session_fraction(tick.event_time)
        if fraction is None:
            continue
        (
            first
            if fraction < 0.1
            else last
            if fraction > 0.9
            else middle
            if 0.4 < fraction < 0.6
            else []
        ).append(tick.size)
    assert statistics.mean(first) > 1.8 * statistics.mean(middle)
    assert statistics.mean(last) > 1.8 * statistics.mean(middle)
    assert u_shape(0.0) == u_shape(1.0) == 3.0 and u_shape(0.5) == 1.0


def test_live_clock_runs_straight_through_time():
    start = datetime(2024, 3, 9, 3, 0, tzinfo=UTC)  # a Saturday night
    ticks = list(
        simulate_ticks(["AAPL"], start=start, tick_seconds=0.5, count=3, sessions_only=False)
    )
    assert [t.event_time for t in ticks] == [start + timedelta(seconds=0.5 * i) for i in range(3)]


def test_prices_follow_the_configured_volatility():
    calm = _ticks(5000, volatility=0.01, tick_seconds=0.39)
    wild = _ticks(5000, volatility=0.8, tick_seconds=0.39)

    def spread(ticks):
        prices = [t.price for t in ticks if t.symbol == "AAPL"]
        return max(prices) / min(prices)

    assert spread(calm) < 1.01 < spread(wild)


def test_pacer_holds_ticks_to_the_wall_rate():
    wall = [100.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        wall[0] += seconds

    pacer = Pacer(rate=4, clock=lambda: wall[0], sleep=sleep)
    for index in range(5):
        pacer.wait_for(index)
    assert slept == [0.25, 0.25, 0.25, 0.25]
    Pacer(rate=0, clock=lambda: 1 / 0).wait_for(10)  # unpaced never reads the clock


def test_plan_realtime_options():
    saturday = datetime(2026, 11, 21, 12, tzinfo=UTC)
    plan = plan_realtime(["aapl", "msft"], rate=200, duration=3, now=saturday)
    assert plan.count == 600 and plan.symbols == ("AAPL", "MSFT")
    assert plan.start == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # most recent weekday
    live = plan_realtime(["AAPL"], rate=10, count=5, clock="live", now=saturday)
    assert live.start == saturday and live.tick_seconds == pytest.approx(0.1)
    with pytest.raises(ProduceError, match="either --count or --duration"):
        plan_realtime(["AAPL"], rate=10, count=5, duration=1)
    with pytest.raises(ProduceError, match="--duration needs a --rate above 0"):
        plan_realtime(["AAPL"], rate=0, duration=1)
    with pytest.raises(ProduceError, match="is a Saturday"):
        plan_realtime(["AAPL"], rate=1, count=1, session_date=date(2026, 11, 21))


def test_interval_plan_spans_exactly_its_interval() -> None:
    from datetime import UTC, datetime, timedelta

    from ingestion.realtime_plan import plan_interval

    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    end = start + timedelta(minutes=15)
    plan = plan_interval(["AAPL", "MSFT"], start=start, end=end, count=900, seed=3)
    ticks = list(plan.ticks())
    assert len(ticks) == 900
    times = [tick.event_time for tick in ticks]
    assert times == sorted(times)
    assert times[0] >= start and times[-1] < end
    assert times[-1] - times[0] >= timedelta(minutes=14)  # spread over the whole interval
    again = [
        t.model_dump()
        for t in plan_interval(["AAPL", "MSFT"], start=start, end=end, count=900, seed=3).ticks()
    ]
    assert again == [t.model_dump() for t in ticks]
    with pytest.raises(ProduceError):
        plan_interval(["AAPL"], start=end, end=start, count=10)
