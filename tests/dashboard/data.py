"""Warehouse rows for the dashboard's tests, from the bundled real bars (data/).

Daily metrics and real-time windows are written to a test bucket as processed parquet
(the contract's arrow schema) and loaded with the real loader; the daily features are
computed here with pandas by the definitions of issue 15 (the Spark job's own tests
check it against them) and loaded the same way.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import s3fs

from ingestion.csv_source import BUNDLED_FILES
from stocklake import lake
from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    DAILY_METRICS_COLUMNS,
    REALTIME_WINDOW_COLUMNS,
    WINDOW_SIZES,
    Interval,
    arrow_schema,
)
from tests import reference

DAILY = {f.symbol: f.path for f in BUNDLED_FILES if f.interval == Interval.D1}
MINUTE = next(f for f in BUNDLED_FILES if f.interval != Interval.D1)


def daily_bars() -> pd.DataFrame:
    """Every bundled daily file: symbol, date, open, high, low, close, volume, prev_close."""
    frames = []
    for symbol, path in sorted(DAILY.items()):
        bars = pd.read_csv(path, parse_dates=["date"]).sort_values("date")
        bars["symbol"] = symbol
        bars["prev_close"] = bars["close"].shift(1)
        frames.append(bars)
    return pd.concat(frames, ignore_index=True)


def daily_metrics(bars: pd.DataFrame) -> pa.Table:
    """daily_metrics rows (one bar a day, so the day's metrics are the bar's)."""
    start = bars["date"].dt.tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "symbol": bars["symbol"],
            "trade_date": bars["date"].dt.date,
            "interval": "1d",
            "daily_open": bars["open"],
            "daily_high": bars["high"],
            "daily_low": bars["low"],
            "daily_close": bars["close"],
            "daily_volume": bars["volume"].astype("int64"),
            "daily_change_pct": (bars["close"] - bars["open"]) / bars["open"] * 100,
            "bar_count": np.ones(len(bars), dtype=np.int32),
            "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
            "prev_close": bars["prev_close"],
            "return_pct": (bars["close"] / bars["prev_close"] - 1) * 100,
            "range_pct": (bars["high"] - bars["low"]) / bars["low"] * 100,
            "first_bar_ts": start,
            "last_bar_ts": start,
        }
    )
    return pa.Table.from_pandas(
        frame, schema=arrow_schema(DAILY_METRICS_COLUMNS), preserve_index=False
    )


def daily_features(bars: pd.DataFrame) -> pd.DataFrame:
    """daily_features rows of `daily_bars()`-shaped bars: the pandas reference of the
    README's definitions (tests/reference.py), per symbol over its rows."""
    metrics = pd.DataFrame(
        {
            "symbol": bars["symbol"],
            "trade_date": bars["date"].dt.date,
            "daily_close": bars["close"],
            "daily_volume": bars["volume"].astype("int64"),
            "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
            "prev_close": bars["prev_close"],
        }
    ).sort_values(["symbol", "trade_date"], ignore_index=True)
    metrics["return_pct"] = (metrics["daily_close"] / metrics["prev_close"] - 1) * 100
    return reference.daily_features(metrics)


def window_metrics() -> pa.Table:
    """15m and 1h tumbling windows of the bundled 1-minute bars (the whole week)."""
    bars = pd.read_csv(MINUTE.path)
    local = pd.to_datetime(bars["date"], format="%Y-%m-%d %H-%M")
    bars["ts"] = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    frames = []
    for size, seconds in WINDOW_SIZES.items():
        grouped = bars.assign(
            window_start=bars["ts"].dt.floor(f"{seconds}s"), notional=bars["close"] * bars["volume"]
        )
        agg = grouped.groupby("window_start").agg(
            avg_price=("close", "mean"),
            volatility=("close", "std"),
            notional=("notional", "sum"),
            total_volume=("volume", "sum"),
            tick_count=("close", "size"),
            min_price=("close", "min"),
            max_price=("close", "max"),
        )
        agg = agg.reset_index()
        agg["vwap"] = agg["notional"] / agg["total_volume"]
        agg["window_end"] = agg["window_start"] + pd.Timedelta(seconds=seconds)
        agg["symbol"] = MINUTE.symbol
        agg["window_size"] = size
        agg["total_volume"] = agg["total_volume"].astype("int64")
        agg["tick_count"] = agg["tick_count"].astype("int64")
        frames.append(agg)
    frame = pd.concat(frames, ignore_index=True)
    names = [name for name, _ in REALTIME_WINDOW_COLUMNS]
    return pa.Table.from_pandas(
        frame[names], schema=arrow_schema(REALTIME_WINDOW_COLUMNS), preserve_index=False
    )


def put_daily(fs: s3fs.S3FileSystem, bucket: str, table: pa.Table) -> int:
    """One parquet file per trade_date partition, as the Spark job lays them out."""
    days = sorted(set(table.column("trade_date").to_pylist()))
    for day in days:
        rows = table.filter(pc.equal(table.column("trade_date"), day))
        _put(fs, f"{bucket}/{lake.processed_historical_prefix(day)}part-00000.parquet", rows)
    return len(days)


def put_features(fs: s3fs.S3FileSystem, bucket: str, frame: pd.DataFrame) -> int:
    """daily_features parquet, one file per trade_date partition (the features job's layout)."""
    table = pa.Table.from_pandas(
        frame, schema=arrow_schema(DAILY_FEATURES_COLUMNS), preserve_index=False
    )
    days = sorted(set(table.column("trade_date").to_pylist()))
    for day in days:
        rows = table.filter(pc.equal(table.column("trade_date"), day))
        prefix = lake.processed_date_prefix(lake.PROCESSED_FEATURES_DAILY, day)
        _put(fs, f"{bucket}/{prefix}part-00000.parquet", rows)
    return len(days)


def put_windows(fs: s3fs.S3FileSystem, bucket: str, table: pa.Table) -> int:
    """One parquet file per (window size, date of window_start) partition."""
    sizes = table.column("window_size").to_pylist()
    days = [start.date() for start in table.column("window_start").to_pylist()]
    parts = sorted(set(zip(sizes, days, strict=True)))
    for size, day in parts:
        mask = pa.array([s == size and d == day for s, d in zip(sizes, days, strict=True)])
        prefix = lake.processed_realtime_prefix(size, day)
        _put(fs, f"{bucket}/{prefix}part-00000.parquet", table.filter(mask))
    return len(parts)


def _put(fs: s3fs.S3FileSystem, path: str, table: pa.Table) -> None:
    with fs.open(path, "wb") as out:
        pq.write_table(table, out)


def first_date(bars: pd.DataFrame) -> date:
    return bars["date"].min().date()
