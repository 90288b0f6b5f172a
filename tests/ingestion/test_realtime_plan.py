"""The plan of a scheduled realtime run (the realtime DAG's simulate task), from its interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from ingestion.errors import ProduceError
from ingestion.realtime_plan import interval_seed, plan_scheduled_run
from ingestion.simulator import accelerated_start
from ingestion.yahoo import DEFAULT_SYMBOLS
from stocklake.schemas import Clock

# Friday 2026-11-20 14:00-14:15 UTC, as Airflow hands it over (pendulum datetimes).
START = pendulum.datetime(2026, 11, 20, 14, 0, tz="UTC")
END = START + timedelta(minutes=15)


def _plan(clock: str, *, symbols=(), start=START, end=END, rate=20, seconds=3):
    return plan_scheduled_run(
        list(symbols), clock=clock, rate=rate, seconds=seconds, start=start, end=end
    )


def test_interval_clock_spans_the_data_interval_and_replays_on_a_rerun():
    plan = _plan("interval", symbols=["aapl", "MSFT"])
    assert (plan.clock, plan.count, plan.rate) == (Clock.INTERVAL, 60, 20)
    assert plan.symbols == ("AAPL", "MSFT")
    assert plan.seed == interval_seed(END) == int(END.timestamp()) % 2**31
    assert type(plan.start) is datetime and plan.start == START
    ticks = list(plan.ticks())
    assert len(ticks) == 60
    assert ticks[0].event_time == START and ticks[-1].event_time < END
    assert END - ticks[-1].event_time == timedelta(seconds=15)  # evenly spread: 900 s / 60
    rerun = [tick.to_json() for tick in _plan("interval", symbols=["AAPL", "MSFT"]).ticks()]
    assert rerun == [tick.to_json() for tick in ticks]
    following = _plan("interval", symbols=["AAPL", "MSFT"], start=END, end=END + (END - START))
    assert following.seed != plan.seed
    assert next(iter(following.ticks())).event_time == END  # the feed continues


def test_no_symbols_means_the_default_set():
    assert _plan("interval").symbols == DEFAULT_SYMBOLS


def test_accelerated_clock_replays_the_intervals_trading_day():
    saturday = pendulum.datetime(2026, 11, 21, 12, 0, tz="UTC")
    plan = _plan("accelerated", start=saturday - timedelta(minutes=15), end=saturday)
    assert plan.clock == Clock.ACCELERATED and plan.count == 60
    assert plan.start == accelerated_start(datetime(2026, 11, 20).date())  # Friday's open
    assert plan.seed == interval_seed(saturday)
    friday = _plan("accelerated")
    assert friday.start == plan.start and friday.seed != plan.seed


def test_live_clock_is_stamped_now():
    before = datetime.now(UTC)
    plan = _plan("live")
    assert plan.clock == Clock.LIVE and plan.count == 60
    assert before <= plan.start <= datetime.now(UTC)


def test_an_unknown_clock_is_an_error():
    with pytest.raises(ProduceError, match="'daily' is not live or accelerated"):
        _plan("daily")
