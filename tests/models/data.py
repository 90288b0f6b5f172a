"""The bundled real files as the warehouse's feature tables, computed with pandas.

Mirrors the README's "Rolling features" definitions (the Spark job is checked against
the same definitions in tests/spark_jobs/); no Spark here, so the models' tests are fast.
"""

from __future__ import annotations

import math
from datetime import timedelta
from functools import cache

import numpy as np
import pandas as pd

from stocklake.schemas import DAILY_FEATURES_COLUMNS, INTRADAY_FEATURES_COLUMNS
from stocklake.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "data"
DAILY_FILES = {
    "AAPL": "apple.csv",
    "AMZN": "amazon.csv",
    "GOOGL": "google.csv",
    "META": "facebook.csv",
    "NFLX": "netflix.csv",
    "TSLA": "tesla.csv",
    "^GSPC": "sp500.csv",
}
LOOKBACK_DAYS = 10  # spark_jobs.daily: prev_close within 10 days


def _symbol_features(symbol: str, name: str) -> pd.DataFrame:
    bars = pd.read_csv(DATA / "daily" / name, parse_dates=["date"]).sort_values("date")
    prev_date = bars["date"].shift(1)
    within = (bars["date"] - prev_date).dt.days <= LOOKBACK_DAYS
    out = pd.DataFrame(
        {
            "symbol": symbol,
            "trade_date": bars["date"].dt.date,
            "close": bars["close"],
            "volume": bars["volume"].astype("int64"),
            "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
            "prev_close": bars["close"].shift(1).where(within),
        }
    ).reset_index(drop=True)
    out["return_pct"] = (out["close"] - out["prev_close"]) / out["prev_close"] * 100
    out["log_return"] = np.log(out["close"] / out["prev_close"])
    for n in (7, 14, 30):
        out[f"sma_{n}"] = out["close"].rolling(n, min_periods=n).mean()
    out["volatility_20d"] = out["log_return"].rolling(20, min_periods=20).std() * math.sqrt(252)
    pv = out["vwap"] * out["volume"]
    out["vwap_20d"] = pv.rolling(20, min_periods=20).sum() / out["volume"].rolling(20).sum()
    out["drawdown_pct"] = (out["close"] / out["close"].cummax() - 1) * 100
    previous = out["return_pct"].shift(1)
    mean = previous.rolling(60, min_periods=60).mean()
    std = previous.rolling(60, min_periods=60).std()
    out["return_zscore_60d"] = (out["return_pct"] - mean) / std
    return out[[name for name, _ in DAILY_FEATURES_COLUMNS]]


@cache
def _daily() -> pd.DataFrame:
    frames = [_symbol_features(symbol, name) for symbol, name in DAILY_FILES.items()]
    return pd.concat(frames, ignore_index=True)


def daily_features() -> pd.DataFrame:
    """daily_features rows of the seven bundled symbols (2019-2020), a fresh copy."""
    return _daily().copy()


@cache
def _intraday() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "intraday" / "fb_week_of_may_20_per_minute.csv")
    local = pd.to_datetime(raw["date"], format="%Y-%m-%d %H-%M")
    ts = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    out = raw.assign(symbol="META", ts=ts, volume=raw["volume"].astype("int64"))
    out = out.sort_values("ts").reset_index(drop=True)
    out["trade_date"] = out["ts"].dt.date
    session = out.groupby("trade_date", sort=False)
    out["_r2"] = np.log(out["close"] / session["close"].shift(1)) ** 2
    out["_pv"] = (out["high"] + out["low"] + out["close"]) / 3 * out["volume"]
    indexed = out.set_index("ts")
    for n in (5, 15, 60):
        anchors = pd.merge_asof(
            out[["ts", "trade_date"]].assign(_at=out["ts"] - timedelta(minutes=n)),
            out[["ts", "trade_date", "close"]].rename(columns={"ts": "_at"}),
            on="_at",
            by="trade_date",
            direction="backward",
        )["close"]
        full = anchors.notna().to_numpy()

        def window_sum(column: str, n: int = n) -> np.ndarray:
            grouped = indexed.groupby("trade_date", sort=False)[column]
            return grouped.rolling(f"{n}min", closed="right").sum().to_numpy()

        out[f"return_{n}m"] = (out["close"] / anchors - 1) * 100
        out[f"realized_vol_{n}m"] = np.where(full, np.sqrt(window_sum("_r2")), np.nan)
        out[f"vwap_{n}m"] = np.where(full, window_sum("_pv") / window_sum("volume"), np.nan)
    out["drawdown_from_high_pct"] = (out["close"] / session["high"].cummax() - 1) * 100
    out["bar_ts"] = out["ts"]
    return out[[name for name, _ in INTRADAY_FEATURES_COLUMNS]]


def intraday_features() -> pd.DataFrame:
    """intraday_features rows of the bundled META minute file (one week), a fresh copy."""
    return _intraday().copy()
