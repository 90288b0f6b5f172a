"""Time-gap checks over the exchange calendar (XNYS, `stocklake.trading_calendar`), pure.

Minute continuity: a symbol's 1-minute bars of a trading day start at every minute of the
session, from the open to the minute before the close (early closes included), and at no
other time. Daily continuity: a symbol's daily rows follow one another over the trading
days; the session before each is present unless the row is the symbol's first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from quality.checks import EXAMPLES, CheckContext
from stocklake import trading_calendar
from stocklake.governance import CheckName

EXCHANGE_ZONE = ZoneInfo("America/New_York")  # XNYS's time, to name minutes as traders do


def previous_trading_day(day: date) -> date:
    """The last trading day before `day` (closures are never longer than two weeks)."""
    return trading_calendar.trading_days(day - timedelta(days=21), day)[-1]


def _minute(ts: pd.Timestamp) -> str:
    return ts.tz_convert(EXCHANGE_ZONE).strftime("%H:%M")


def _session_gaps(symbol: str, day: date, bars: pd.Series) -> tuple[int, int, str]:
    """(missing minutes, bars outside the session, one line naming them) of one symbol-day."""
    bounds = trading_calendar.session_bounds(day)
    observed = pd.DatetimeIndex(bars.unique())
    if bounds is None:
        reason = trading_calendar.closed_reason(day)
        return 0, len(observed), f"{symbol} {day}: {len(observed)} bars on a closed day ({reason})"
    expected = pd.date_range(bounds[0], bounds[1], freq="min", inclusive="left")
    missing = expected.difference(observed)
    outside = observed.difference(expected)
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} missing ({', '.join(map(_minute, missing[:EXAMPLES]))})")
    if len(outside):
        shown = ", ".join(map(_minute, outside[:EXAMPLES]))
        parts.append(f"{len(outside)} outside the session ({shown})")
    line = f"{symbol} {day}: {len(observed)} bars, " + ", ".join(parts) if parts else ""
    return len(missing), len(outside), line


def minute_continuity(frame: pd.DataFrame, time_column: str, ctx: CheckContext) -> dict[str, Any]:
    """Every 1-minute bar of the session present, none outside it, per symbol and day.

    `frame` holds 1-minute rows only (symbol, `time_column` in UTC); the detail names
    minutes in exchange time (ET), the session from open to close (early closes included).
    """
    times = pd.to_datetime(frame[time_column], utc=True)
    missing = outside = 0
    lines = []
    for (symbol, day), bars in times.groupby([frame["symbol"], times.dt.date], sort=True):
        gap, extra, line = _session_gaps(str(symbol), day, bars)
        missing, outside = missing + gap, outside + extra
        if line:
            lines.append(line)
    observed = f"{missing} missing minutes, {outside} bars outside the session"
    expected = "0 missing, 0 outside (the XNYS session)"
    return ctx.row(CheckName.MINUTE_CONTINUITY, not lines, observed, expected, "; ".join(lines))


def _gap_line(symbol: str, day: date, before: date | None) -> str | None:
    """Why `symbol`'s row on `day` breaks continuity (`before`: its previous row's date)."""
    if not trading_calendar.is_trading_day(day):
        return f"{symbol} {day}: a row on a closed day ({trading_calendar.closed_reason(day)})"
    if before is None or before >= previous_trading_day(day):
        return None
    absent = trading_calendar.trading_days(before + timedelta(days=1), day)
    shown = ", ".join(d.isoformat() for d in absent[:EXAMPLES])
    more = f" and {len(absent) - EXAMPLES} more" if len(absent) > EXAMPLES else ""
    return f"{symbol} {day}: trading day(s) {shown}{more} missing since {before}"


def daily_continuity(
    frame: pd.DataFrame,
    date_column: str,
    ctx: CheckContext,
    last_seen: Mapping[str, date | None] | None = None,
) -> dict[str, Any]:
    """Each symbol's rows over consecutive trading days.

    `last_seen`: each symbol's latest date in the lake before the frame's dates (None or
    absent: the frame holds the symbol's first row).
    """
    last_seen = last_seen or {}
    days = pd.to_datetime(frame[date_column], utc=True).dt.date
    lines = []
    for symbol, dates in days.groupby(frame["symbol"], sort=True):
        before = last_seen.get(str(symbol))
        for day in sorted(set(dates)):
            line = _gap_line(str(symbol), day, before)
            if line:
                lines.append(line)
            before = day
    observed = f"{len(lines)} gap(s)"
    detail = "; ".join(lines[:20]) + (f"; and {len(lines) - 20} more" if len(lines) > 20 else "")
    return ctx.row(CheckName.DAILY_CONTINUITY, not lines, observed, "0 gaps (XNYS)", detail)
