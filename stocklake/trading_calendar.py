"""Which dates are trading days: the New York Stock Exchange calendar (XNYS), defined once.

Backed by the maintained `exchange_calendars` package: weekends, exchange
holidays (Good Friday, observed holidays) and unscheduled closures (national
days of mourning, Hurricane Sandy). A trading date is the UTC date of a bar
(`stocklake.schemas.trade_date_of`); US sessions never cross midnight UTC, so a
session's exchange date is its UTC date. pandas loads on first use, not on import.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

EXCHANGE = "XNYS"
# pandas' nanosecond timestamps span 1677-09-21 .. 2262-04-11.
FIRST_YEAR, LAST_YEAR = 1678, 2261


class CalendarRangeError(ValueError):
    """A date outside the years the exchange calendar can compute."""


@dataclass(frozen=True)
class TradingSplit:
    """Some dates split into trading dates and the others, each with why it has no session."""

    trading: list[date] = field(default_factory=list)
    closed: dict[date, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the trading dates covered, then each skipped date with its reason."""
        covered = ", ".join(day.isoformat() for day in self.trading) or "no trading date"
        text = f"covers {covered}"
        if self.closed:
            skipped = ", ".join(f"{day} ({why})" for day, why in sorted(self.closed.items()))
            text += f"; skipped {skipped}: not {EXCHANGE} trading days"
        return text


def is_trading_day(day: date) -> bool:
    return day in _sessions(day.year, day.year)


def trading_days(start: date, end: date) -> list[date]:
    """Trading dates `start <= d < end`, in order."""
    if end <= start:
        return []
    last = end - timedelta(days=1)
    sessions = _sessions(start.year, last.year)
    return [day for day in _days(start, end) if day in sessions]


def closed_reason(day: date) -> str | None:
    """Why `day` has no session ('Saturday', 'holiday: Good Friday', ...); None on a trading day."""
    if is_trading_day(day):
        return None
    if day.weekday() >= 5:
        return f"{day:%A}"
    name = _holiday_names(day.year).get(day)
    return f"holiday: {name}" if name else "exchange closed (unscheduled closure)"


def split_trading(days: Iterable[date]) -> TradingSplit:
    """Trading dates among `days` (sorted, unique) and the reason for each other date."""
    split = TradingSplit()
    for day in sorted(set(days)):
        reason = closed_reason(day)
        if reason is None:
            split.trading.append(day)
        else:
            split.closed[day] = reason
    return split


def interval_dates(start: datetime, end: datetime) -> TradingSplit:
    """The dates whose 00:00 UTC falls in [start, end), split into trading and closed.

    A run scheduled after the US close (22:00 UTC) covers [D-1 22:00, D 22:00),
    which holds date D: its daily bar (00:00 UTC) and its session's intraday bars
    (13:30-21:00 UTC). Monday's run covers Saturday, Sunday and Monday: only
    Monday trades.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"interval [{start}, {end}) needs time zones (Airflow's are UTC)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date() if start.time() == time(0) else start.date() + timedelta(days=1)
    last = end.date() if end.time() != time(0) else end.date() - timedelta(days=1)
    return split_trading(_days(first, last + timedelta(days=1)))


def last_open(moment: datetime) -> datetime | None:
    """The latest session open at or before `moment` (UTC), within its year and the one
    before; None outside the calendar's range."""
    moment = moment.astimezone(UTC)
    year = moment.year
    if not FIRST_YEAR < year <= LAST_YEAR:
        return None
    opens = _opens(year - 1, year)
    at = bisect_right(opens, moment)
    return opens[at - 1] if at else None


@lru_cache(maxsize=8)
@lru_cache(maxsize=512)
def session_bounds(day: date) -> tuple[datetime, datetime] | None:
    """The session's open and close (UTC) on a trading day (early closes included); None
    on other days."""
    if not is_trading_day(day):
        return None
    import pandas as pd

    calendar = _calendar(day.year, day.year)
    label = pd.Timestamp(day)
    return (
        calendar.session_open(label).to_pydatetime(),
        calendar.session_close(label).to_pydatetime(),
    )


def _opens(first_year: int, last_year: int) -> list[datetime]:
    return sorted(ts.to_pydatetime() for ts in _calendar(first_year, last_year).opens)


def _days(start: date, end: date) -> Iterable[date]:
    return (start + timedelta(days=n) for n in range(max((end - start).days, 0)))


@lru_cache(maxsize=8)
def _calendar(first_year: int, last_year: int) -> ExchangeCalendar:
    import exchange_calendars

    for year in (first_year, last_year):
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise CalendarRangeError(
                f"year {year} is outside the {EXCHANGE} calendar's range "
                f"({FIRST_YEAR}-{LAST_YEAR}); check the file's dates"
            )
    return exchange_calendars.get_calendar(
        EXCHANGE, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
    )


@lru_cache(maxsize=8)
def _sessions(first_year: int, last_year: int) -> frozenset[date]:
    return frozenset(ts.date() for ts in _calendar(first_year, last_year).sessions)


@lru_cache(maxsize=8)
def _holiday_names(year: int) -> dict[date, str]:
    import pandas as pd

    holidays = _calendar(year, year).regular_holidays
    if holidays is None:
        return {}
    named = holidays.holidays(pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31), True)
    return {ts.date(): str(name) for ts, name in named.items()}
