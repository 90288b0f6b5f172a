"""US equity session times, bar grids and the date-range rules every producer shares.

Sessions are 09:30-16:00 America/New_York on weekdays. Exchange holidays are
not modelled: synthetic data and the simulator trade on every weekday.
Date ranges are half-open: `start` inclusive, `end` exclusive (like Airflow's
data interval).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from stocklake.schemas import Interval

EXCHANGE_TZ = ZoneInfo("America/New_York")
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(16, 0)
SESSION_SECONDS = 6.5 * 3600
TRADING_DAYS_PER_YEAR = 252

_PERIOD = re.compile(r"^(?P<n>\d+)(?P<unit>d|wk|mo|y)$")


class DateRangeError(ValueError):
    """A start/end/period combination that makes no sense; the message says which."""


@dataclass(frozen=True)
class DateRange:
    """Trade dates `start <= d < end`."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise DateRangeError(
                f"empty date range: --end {self.end} must be after --start {self.start} "
                "(start is inclusive, end is exclusive)"
            )

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    def __str__(self) -> str:
        return f"[{self.start}, {self.end})"


def parse_period(period: str, today: date) -> DateRange:
    """`5d`, `2wk`, `3mo`, `1y` or `ytd`, ending today (inclusive)."""
    end = today + timedelta(days=1)
    if period == "ytd":
        return DateRange(date(today.year, 1, 1), end)
    match = _PERIOD.match(period)
    if not match or int(match["n"]) == 0:
        raise DateRangeError(
            f"--period {period!r} is not understood; use e.g. 5d, 2wk, 3mo, 1y or ytd"
        )
    n, unit = int(match["n"]), match["unit"]
    if unit == "d":
        start = end - timedelta(days=n)
    elif unit == "wk":
        start = end - timedelta(weeks=n)
    else:
        months = n * (12 if unit == "y" else 1)
        year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
        start = _clamped_date(year, month + 1, today.day) + timedelta(days=1)
    return DateRange(start, end)


def _clamped_date(year: int, month: int, day: int) -> date:
    while True:
        try:
            return date(year, month, day)
        except ValueError:
            day -= 1


def resolve_range(
    start: date | None, end: date | None, period: str | None, today: date
) -> DateRange | None:
    """The range the user asked for, or None when they gave no bound at all."""
    if period is not None:
        if start is not None or end is not None:
            raise DateRangeError("give either --period or --start/--end, not both")
        return parse_period(period, today)
    if start is None and end is None:
        return None
    if start is None:
        raise DateRangeError("--end needs a --start (or use --period)")
    return DateRange(start, end if end is not None else today + timedelta(days=1))


def weekdays(days: DateRange) -> Iterator[date]:
    day = days.start
    while day < days.end:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def most_recent_weekday(today: date) -> date:
    while today.weekday() >= 5:
        today -= timedelta(days=1)
    return today


def next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def session_open_utc(day: date) -> datetime:
    return datetime.combine(day, SESSION_OPEN, EXCHANGE_TZ).astimezone(UTC)


def session_close_utc(day: date) -> datetime:
    return datetime.combine(day, SESSION_CLOSE, EXCHANGE_TZ).astimezone(UTC)


def daily_bar_ts(day: date) -> datetime:
    """The contract's timestamp of a daily bar: 00:00 UTC of the trade date."""
    return datetime.combine(day, time(0, 0), UTC)


def bar_starts(day: date, interval: str) -> list[datetime]:
    """Bar start times (UTC) of one session; hourly bars start at :30 like Yahoo's."""
    if interval == Interval.D1:
        return [daily_bar_ts(day)]
    step = timedelta(seconds=Interval(interval).seconds)
    moment, close = session_open_utc(day), session_close_utc(day)
    starts = []
    while moment < close:
        starts.append(moment)
        moment += step
    return starts


def session_fraction(moment: datetime) -> float | None:
    """How far through its session a moment is (0 at the open, 1 at the close), or None."""
    local = moment.astimezone(EXCHANGE_TZ)
    if local.weekday() >= 5:
        return None
    opened = datetime.combine(local.date(), SESSION_OPEN, EXCHANGE_TZ)
    elapsed = (local - opened).total_seconds()
    if not 0 <= elapsed <= SESSION_SECONDS:
        return None
    return elapsed / SESSION_SECONDS
