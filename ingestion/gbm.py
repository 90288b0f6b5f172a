"""Geometric Brownian motion pieces shared by synthetic bars and the tick simulator."""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from ingestion.market_hours import SESSION_SECONDS, TRADING_DAYS_PER_YEAR
from stocklake.schemas import Interval

# Seconds of trading time in a year: GBM's clock only runs while the market is open.
TRADING_SECONDS_PER_YEAR = TRADING_DAYS_PER_YEAR * SESSION_SECONDS
DEFAULT_DRIFT = 0.08
DEFAULT_VOLATILITY = 0.30


def symbol_rng(seed: int, symbol: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, symbol, purpose): stable across runs and hosts."""
    digest = hashlib.sha256(f"{seed}\0{symbol}\0{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def gbm_factor(dt_years: float, drift: float, volatility: float, shock: float) -> float:
    """exp((mu - sigma^2/2) dt + sigma sqrt(dt) z): one exact GBM step."""
    return math.exp(
        (drift - 0.5 * volatility**2) * dt_years + volatility * math.sqrt(dt_years) * shock
    )


def u_shape(session_fraction: float, depth: float = 2.0) -> float:
    """Intraday activity: 1 + depth at the open and the close, 1 at midday."""
    return 1.0 + depth * (2.0 * session_fraction - 1.0) ** 2


def start_price(symbol: str, seed: int) -> float:
    """The last bundled close where the symbol has history, else a seeded 20..500."""
    known = bundled_last_close(symbol)
    if known is not None:
        return known
    return round(float(symbol_rng(seed, symbol, "start-price").uniform(20.0, 500.0)), 2)


@lru_cache(maxsize=64)
def bundled_last_close(symbol: str) -> float | None:
    import csv

    from ingestion.csv_source import BUNDLED_FILES

    for bundled in BUNDLED_FILES:
        if bundled.symbol == symbol and bundled.interval == Interval.D1 and bundled.path.exists():
            with bundled.path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            return round(float(rows[-1]["close"]), 2) if rows else None
    return None


def gbm_overrides(drift: float | None, volatility: float | None) -> dict[str, float]:
    """The GBM parameters a user gave, as keyword arguments (a None keeps the default)."""
    given = (("drift", drift), ("volatility", volatility))
    return {name: value for name, value in given if value is not None}
