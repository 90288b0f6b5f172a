"""The README's rolling features computed independently with pandas, on the bundled real
files: the reference the Spark job is checked against (tests/spark_jobs/test_features.py),
and the feature tables the model and dashboard tests load (no Spark there)."""

from __future__ import annotations

import math
from datetime import date, timedelta

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
LOOKBACK_DAYS = 10  # spark_jobs.daily.DEFAULT_LOOKBACK_DAYS, for prev_close


def daily_metrics(
    files: dict[str, str] = DAILY_FILES, dropped: dict[str, set[date]] | None = None
) -> pd.DataFrame:
    """Daily metrics rows (the features' input) of bundled daily files, by symbol; the
    dates in `dropped[symbol]` are left out (a gap of the test's own)."""
    frames = []
    for symbol, name in files.items():
        bars = pd.read_csv(DATA / "daily" / name, parse_dates=["date"]).sort_values("date")
        bars["trade_date"] = bars["date"].dt.date
        bars = bars[~bars["trade_date"].isin((dropped or {}).get(symbol, set()))]
        prev_date = bars["date"].shift(1)
        within = (bars["date"] - prev_date).dt.days <= LOOKBACK_DAYS
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "trade_date": bars["trade_date"],
                    "daily_close": bars["close"],
                    "daily_volume": bars["volume"].astype("int64"),
                    "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
                    "prev_close": bars["close"].shift(1).where(within),
                }
            )
        )
    metrics = pd.concat(frames, ignore_index=True)
    metrics["return_pct"] = (
        (metrics["daily_close"] - metrics["prev_close"]) / metrics["prev_close"] * 100
    )
    return metrics


def daily_features(metrics: pd.DataFrame) -> pd.DataFrame:
    """The README's daily features of `daily_metrics` rows, in pandas."""
    out = metrics.rename(columns={"daily_close": "close", "daily_volume": "volume"}).copy()
    out["log_return"] = np.log(out["close"] / out["prev_close"])
    by = out.groupby("symbol", sort=False)

    def rolling(column: str, n: int, what: str, shift: int = 0) -> pd.Series:
        series = by[column].shift(shift) if shift else out[column]
        grouped = series.groupby(out["symbol"], sort=False).rolling(n, min_periods=n)
        return getattr(grouped, what)().reset_index(level=0, drop=True)

    for n in (7, 14, 30):
        out[f"sma_{n}"] = rolling("close", n, "mean")
    out["volatility_20d"] = rolling("log_return", 20, "std") * math.sqrt(252)
    out["_pv"] = out["vwap"] * out["volume"]
    out["vwap_20d"] = rolling("_pv", 20, "sum") / rolling("volume", 20, "sum")
    out["drawdown_pct"] = (out["close"] / by["close"].cummax() - 1) * 100
    mean = rolling("return_pct", 60, "mean", shift=1)
    std = rolling("return_pct", 60, "std", shift=1)
    out["return_zscore_60d"] = (out["return_pct"] - mean) / std
    return out[[name for name, _ in DAILY_FEATURES_COLUMNS]]


def minute_bars(gap: bool = False) -> pd.DataFrame:
    """The bundled META minute bars (UTC); with `gap`, five minutes of 2019-05-21 left out."""
    raw = pd.read_csv(DATA / "intraday" / "fb_week_of_may_20_per_minute.csv")
    local = pd.to_datetime(raw["date"], format="%Y-%m-%d %H-%M")
    ts = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    bars = raw.assign(symbol="META", interval="1m", ts=ts, volume=raw["volume"].astype("int64"))
    # A gap of five minutes inside a session: windows are event time, not row counts.
    missing = (ts >= pd.Timestamp("2019-05-21 14:00", tz="UTC")) & (
        ts < pd.Timestamp("2019-05-21 14:05", tz="UTC")
    )
    bars = bars[~(missing & gap)].sort_values("ts").reset_index(drop=True)
    bars["trade_date"] = bars["ts"].dt.date
    return bars[["symbol", "interval", "trade_date", "ts", "high", "low", "close", "volume"]]


def intraday_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The README's intraday features of `minute_bars` rows, in pandas."""
    out = bars.copy()
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
