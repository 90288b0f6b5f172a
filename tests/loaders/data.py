"""Processed-zone test data for the loaders, built from the real CSV files.

The loaders' tests write their own parquet (the contract's arrow schema) instead of
depending on the Spark jobs; the numbers are real bars, the metrics computed here.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

from stocklake import lake
from stocklake.schemas import (
    DAILY_METRICS_COLUMNS,
    REALTIME_WINDOW_COLUMNS,
    WINDOW_SIZES,
    arrow_schema,
)

DATA = Path("/work/shared/data")
if not DATA.is_dir():  # the project's own copy, when the shared folder is not there
    DATA = Path(__file__).resolve().parents[2] / "data"

DAILY_FILES = {"AAPL": "apple.csv", "AMZN": "amazon.csv", "TSLA": "tesla.csv", "FB": "facebook.csv"}


def daily_metrics(first: str, last: str, symbols: tuple[str, ...] = tuple(DAILY_FILES)) -> pa.Table:
    """daily_metrics rows for real trading days in [first, last] (one bar per day)."""
    frames = []
    for symbol in symbols:
        bars = pd.read_csv(DATA / "daily" / DAILY_FILES[symbol], parse_dates=["date"])
        bars["prev_close"] = bars["close"].shift(1)
        bars = bars[(bars["date"] >= first) & (bars["date"] <= last)].copy()
        bars["symbol"] = symbol
        frames.append(bars)
    bars = pd.concat(frames, ignore_index=True)
    start = bars["date"].dt.tz_localize("UTC")
    columns = {
        "symbol": bars["symbol"],
        "trade_date": bars["date"].dt.date,
        "interval": ["1d"] * len(bars),
        "daily_open": bars["open"],
        "daily_high": bars["high"],
        "daily_low": bars["low"],
        "daily_close": bars["close"],
        "daily_volume": bars["volume"].astype("int64"),
        "daily_change_pct": (bars["close"] - bars["open"]) / bars["open"] * 100,
        "bar_count": np.ones(len(bars), dtype=np.int32),
        "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
        # NaN for the first day of a file: a real null in the contract.
        "prev_close": bars["prev_close"],
        "return_pct": (bars["close"] / bars["prev_close"] - 1) * 100,
        "range_pct": (bars["high"] - bars["low"]) / bars["low"] * 100,
        "first_bar_ts": start,
        "last_bar_ts": start,
    }
    frame = pd.DataFrame(columns)
    table = pa.Table.from_pandas(
        frame, schema=arrow_schema(DAILY_METRICS_COLUMNS), preserve_index=False
    )
    return table


def window_metrics(day: str = "2019-05-20") -> pa.Table:
    """realtime_window_metrics rows (15m and 1h tumbling windows) from FB's real minute bars."""
    bars = pd.read_csv(DATA / "intraday" / "fb_week_of_may_20_per_minute.csv")
    local = pd.to_datetime(bars["date"], format="%Y-%m-%d %H-%M")
    bars["ts"] = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    bars = bars[bars["ts"].dt.date == date.fromisoformat(day)]
    frames = []
    for size, seconds in WINDOW_SIZES.items():
        start = bars["ts"].dt.floor(f"{seconds}s")
        grouped = bars.assign(window_start=start, notional=bars["close"] * bars["volume"])
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
        agg["symbol"] = "FB"
        agg["window_size"] = size
        agg["total_volume"] = agg["total_volume"].astype("int64")
        agg["tick_count"] = agg["tick_count"].astype("int64")
        frames.append(agg)
    frame = pd.concat(frames, ignore_index=True)
    names = [name for name, _ in REALTIME_WINDOW_COLUMNS]
    return pa.Table.from_pandas(
        frame[names], schema=arrow_schema(REALTIME_WINDOW_COLUMNS), preserve_index=False
    )


class TestLake:
    """Writes processed parquet into one bucket the way the Spark jobs lay it out."""

    __test__ = False

    def __init__(self, fs: s3fs.S3FileSystem, bucket: str) -> None:
        self.fs = fs
        self.bucket = bucket

    def put(self, key: str, table: pa.Table) -> str:
        with self.fs.open(f"{self.bucket}/{key}", "wb") as out:
            pq.write_table(table, out)
        return key

    def put_daily(self, table: pa.Table, part: str = "part-00000") -> list[str]:
        """One file per trade_date partition."""
        keys = []
        for day in sorted(set(table.column("trade_date").to_pylist())):
            rows = table.filter(pa.compute.equal(table.column("trade_date"), day))
            keys.append(self.put(f"{lake.processed_historical_prefix(day)}{part}.parquet", rows))
        return keys

    def put_windows(self, table: pa.Table, part: str = "part-00000") -> list[str]:
        """One file per (window size, date of window_start) partition."""
        sizes = table.column("window_size").to_pylist()
        days = [start.date() for start in table.column("window_start").to_pylist()]
        keys = []
        for size, day in sorted(set(zip(sizes, days, strict=True))):
            mask = [s == size and d == day for s, d in zip(sizes, days, strict=True)]
            prefix = lake.processed_realtime_prefix(size, day)
            keys.append(self.put(f"{prefix}{part}.parquet", table.filter(pa.array(mask))))
        return keys

    def delete(self, key: str) -> None:
        self.fs.rm(f"{self.bucket}/{key}")


def canonical(value: Any) -> str:
    """One spelling per value, whichever backend or file it came from."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "∅" if value is None else "nan"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else repr(float(value))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def canonical_rows(rows: list[tuple[Any, ...]]) -> list[tuple[str, ...]]:
    return sorted(tuple(canonical(value) for value in row) for row in rows)


def checksum(rows: list[tuple[Any, ...]]) -> str:
    """Content checksum that ignores row order."""
    digest = hashlib.sha256()
    for row in canonical_rows(rows):
        digest.update("\x1f".join(row).encode() + b"\n")
    return digest.hexdigest()


def arrow_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns, strict=True))
