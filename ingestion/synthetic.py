"""Synthetic OHLCV bars: geometric Brownian motion, deterministic by seed.

Each bar is simulated as a few GBM sub-steps from its open, so high and low
are the path's extremes and OHLC is consistent by construction. The same
(seed, symbol, range, interval) always gives the same bars.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from ingestion.gbm import (
    DEFAULT_DRIFT,
    DEFAULT_VOLATILITY,
    TRADING_SECONDS_PER_YEAR,
    gbm_factor,
    start_price,
    symbol_rng,
    u_shape,
)
from ingestion.market_hours import (
    SESSION_SECONDS,
    DateRange,
    bar_starts,
    session_open_utc,
    weekdays,
)
from stocklake.schemas import HistoricalBar, HistoricalSource, Interval

SUB_STEPS = 8
# Overnight moves are smaller than a session's: a fraction of a day's variance.
OVERNIGHT_VARIANCE_SHARE = 0.25


def synthetic_bars(
    symbols: Sequence[str],
    days: DateRange,
    interval: str,
    *,
    seed: int,
    ingested_at: datetime,
    drift: float = DEFAULT_DRIFT,
    volatility: float = DEFAULT_VOLATILITY,
) -> Iterator[HistoricalBar]:
    """Bars for every symbol on every weekday in `days`, symbol by symbol in time order."""
    for symbol in symbols:
        yield from _symbol_bars(symbol, days, interval, seed, ingested_at, drift, volatility)


def _symbol_bars(
    symbol: str,
    days: DateRange,
    interval: str,
    seed: int,
    ingested_at: datetime,
    drift: float,
    volatility: float,
) -> Iterator[HistoricalBar]:
    rng = symbol_rng(seed, symbol, f"bars:{interval}:{days.start}")
    price = start_price(symbol, seed)
    base_volume = float(rng.uniform(2e6, 5e7))
    bar_seconds = SESSION_SECONDS if interval == Interval.D1 else Interval(interval).seconds
    step_years = bar_seconds / SUB_STEPS / TRADING_SECONDS_PER_YEAR
    overnight_years = OVERNIGHT_VARIANCE_SHARE * SESSION_SECONDS / TRADING_SECONDS_PER_YEAR
    for day in weekdays(days):
        price *= gbm_factor(overnight_years, drift, volatility, float(rng.standard_normal()))
        opened = session_open_utc(day)
        for ts in bar_starts(day, interval):
            open_ = price
            path = [open_]
            for shock in rng.standard_normal(SUB_STEPS):
                path.append(path[-1] * gbm_factor(step_years, drift, volatility, float(shock)))
            price = path[-1]
            if interval == Interval.D1:
                share = 1.0
            else:
                middle = (ts - opened).total_seconds() + bar_seconds / 2
                # A bar's share of the day's volume follows the intraday U shape.
                share = u_shape(min(middle / SESSION_SECONDS, 1.0)) * bar_seconds / SESSION_SECONDS
            volume = int(base_volume * share * float(rng.lognormal(0.0, 0.25)))
            yield HistoricalBar(
                symbol=symbol,
                ts=ts,
                interval=interval,
                open=round(open_, 4),
                high=round(max(path), 4),
                low=round(min(path), 4),
                close=round(price, 4),
                volume=volume,
                source=HistoricalSource.SYNTHETIC,
                ingested_at=ingested_at,
            )
