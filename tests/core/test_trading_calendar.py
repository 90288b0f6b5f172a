"""Which dates are trading days (XNYS), and which dates a scheduled batch run covers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from stocklake.trading_calendar import (
    CalendarRangeError,
    closed_reason,
    interval_dates,
    is_trading_day,
    split_trading,
    trading_days,
)


def run_interval(run_day: date) -> tuple[datetime, datetime]:
    """The data interval of stock_market_batch's run on `run_day` (cron 0 22 * * 1-5)."""
    previous = run_day - timedelta(days=3 if run_day.weekday() == 0 else 1)
    return (
        datetime(previous.year, previous.month, previous.day, 22, tzinfo=UTC),
        datetime(run_day.year, run_day.month, run_day.day, 22, tzinfo=UTC),
    )


def test_a_weekday_run_covers_its_own_date() -> None:
    split = interval_dates(*run_interval(date(2020, 12, 30)))
    assert split.trading == [date(2020, 12, 30)]
    assert split.closed == {}
    assert split.describe() == "covers 2020-12-30"


def test_a_monday_run_covers_monday_and_says_why_the_weekend_is_skipped() -> None:
    split = interval_dates(*run_interval(date(2020, 12, 28)))
    assert split.trading == [date(2020, 12, 28)]
    assert split.closed == {date(2020, 12, 26): "Saturday", date(2020, 12, 27): "Sunday"}
    assert split.describe() == (
        "covers 2020-12-28; skipped 2020-12-26 (Saturday), 2020-12-27 (Sunday): "
        "not XNYS trading days"
    )


def test_a_monday_after_good_friday() -> None:
    friday = interval_dates(*run_interval(date(2021, 4, 2)))
    assert friday.trading == []
    assert friday.closed == {date(2021, 4, 2): "holiday: Good Friday"}
    monday = interval_dates(*run_interval(date(2021, 4, 5)))
    assert monday.trading == [date(2021, 4, 5)]
    assert set(monday.closed) == {date(2021, 4, 3), date(2021, 4, 4)}


def test_a_long_weekend() -> None:
    # MLK day 2021-01-18: Monday's run has no trading date at all, Tuesday's has one.
    mlk = interval_dates(*run_interval(date(2021, 1, 18)))
    assert mlk.trading == []
    assert mlk.closed[date(2021, 1, 18)] == "holiday: Dr. Martin Luther King Jr. Day"
    assert interval_dates(*run_interval(date(2021, 1, 19))).trading == [date(2021, 1, 19)]
    # One interval over the whole long weekend (a manual run) covers only the Tuesday.
    whole = interval_dates(
        datetime(2021, 1, 15, 22, tzinfo=UTC), datetime(2021, 1, 19, 22, tzinfo=UTC)
    )
    assert whole.trading == [date(2021, 1, 19)]
    assert sorted(whole.closed) == [date(2021, 1, 16), date(2021, 1, 17), date(2021, 1, 18)]


def test_a_holiday_alone() -> None:
    split = interval_dates(*run_interval(date(2020, 12, 25)))
    assert split.trading == []
    assert split.closed == {date(2020, 12, 25): "holiday: Christmas"}
    assert split.describe() == (
        "covers no trading date; skipped 2020-12-25 (holiday: Christmas): not XNYS trading days"
    )


def test_interval_bounds_are_half_open_at_midnight() -> None:
    split = interval_dates(datetime(2020, 12, 29, tzinfo=UTC), datetime(2020, 12, 31, tzinfo=UTC))
    assert split.trading == [date(2020, 12, 29), date(2020, 12, 30)]
    with pytest.raises(ValueError, match="time zone"):
        interval_dates(datetime(2020, 12, 29), datetime(2020, 12, 30))


def test_unscheduled_closures_and_observed_holidays() -> None:
    assert closed_reason(date(2018, 12, 5)) == "exchange closed (unscheduled closure)"
    assert closed_reason(date(2012, 10, 29)) == "exchange closed (unscheduled closure)"
    # Christmas 2021 fell on a Saturday: the exchange closed on Friday the 24th.
    assert closed_reason(date(2021, 12, 24)) == "holiday: Christmas"
    assert closed_reason(date(2021, 12, 27)) is None


def test_trading_days_in_any_year() -> None:
    assert len(trading_days(date(2015, 1, 1), date(2016, 1, 1))) == 252
    assert len(trading_days(date(2020, 10, 1), date(2020, 11, 1))) == 22
    assert trading_days(date(2020, 1, 2), date(2020, 1, 2)) == []
    assert is_trading_day(date(1999, 12, 31)) and not is_trading_day(date(2000, 1, 1))
    split = split_trading([date(2020, 12, 24), date(2020, 12, 25), date(2020, 12, 24)])
    assert split.trading == [date(2020, 12, 24)]


def test_a_year_outside_the_calendar_is_a_clear_error() -> None:
    with pytest.raises(CalendarRangeError, match="year 2300"):
        is_trading_day(date(2300, 1, 2))
