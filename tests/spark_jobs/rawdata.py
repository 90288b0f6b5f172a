"""Raw-zone test data built from the real CSV files, and pandas reference metrics.

Written independently of spark_jobs: the lake layout comes from stocklake.lake,
the wire form from stocklake.schemas, the numbers from pandas.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from stocklake import lake
from stocklake.schemas import HistoricalBar, RealtimeTick, format_ts, trade_date_of

DATA = Path("/work/shared/data")
if not DATA.is_dir():  # the project's own copy, when the shared folder is not there
    DATA = Path(__file__).resolve().parents[2] / "data"
INGESTED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def fb_minute_bars(ingested_at: datetime = INGESTED) -> list[HistoricalBar]:
    """FB 1-minute bars, 2019-05-20..24, exchange time (US/Eastern) converted to UTC."""
    frame = pd.read_csv(DATA / "intraday" / "fb_week_of_may_20_per_minute.csv")
    local = pd.to_datetime(frame["date"], format="%Y-%m-%d %H-%M")
    utc = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    return [
        HistoricalBar(
            symbol="FB",
            ts=ts.to_pydatetime(),
            interval="1m",
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=int(row.volume),
            source="csv",
            ingested_at=ingested_at,
        )
        for ts, row in zip(utc, frame.itertuples(index=False), strict=True)
    ]


def daily_bars(
    file: str, symbol: str, first: str | None = None, last: str | None = None
) -> list[HistoricalBar]:
    """Daily bars of one real file (00:00 UTC of the trading date), optionally a date range."""
    frame = pd.read_csv(DATA / "daily" / file, parse_dates=["date"])
    if first:
        frame = frame[frame["date"] >= first]
    if last:
        frame = frame[frame["date"] <= last]
    return [
        HistoricalBar(
            symbol=symbol,
            ts=row.date.to_pydatetime().replace(tzinfo=UTC),
            interval="1d",
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            adj_close=row.adj_close,
            volume=int(row.volume),
            source="csv",
            ingested_at=INGESTED,
        )
        for row in frame.itertuples(index=False)
    ]


def raw_lines(
    records: Iterable[HistoricalBar | RealtimeTick], topic: str, partition: int, first_offset: int
) -> list[bytes]:
    """Wire records as the landing stage writes them: JSON plus the RAW_METADATA fields."""
    lines = []
    for offset, record in enumerate(records, start=first_offset):
        payload = json.loads(record.to_json())
        payload.update(
            _topic=topic,
            _partition=partition,
            _offset=offset,
            _landed_at=format_ts(INGESTED),
        )
        lines.append(json.dumps(payload, separators=(",", ":")).encode())
    return lines


def put_raw_historical(
    client,
    bucket: str,
    bars: list[HistoricalBar],
    topic: str = "hist",
    partition: int = 0,
    first_offset: int = 0,
) -> list[str]:
    """One raw object per trading date, named by its offset range. Returns the keys."""
    by_day: dict = defaultdict(list)
    for bar in bars:
        by_day[trade_date_of(bar.ts)].append(bar)
    keys, offset = [], first_offset
    for day in sorted(by_day):
        lines = raw_lines(by_day[day], topic, partition, offset)
        name = lake.OffsetRange(topic, partition, offset, offset + len(lines) - 1).object_name()
        key = lake.raw_historical_prefix(day) + name
        client.put_object(Bucket=bucket, Key=key, Body=b"\n".join(lines) + b"\n")
        keys.append(key)
        offset += len(lines)
    return keys


def reference_daily_metrics(bars: list[HistoricalBar], lookback_days: int = 10) -> pd.DataFrame:
    """The daily metrics computed by pandas alone, one row per (symbol, trade_date)."""
    frame = pd.DataFrame([bar.model_dump() for bar in bars])
    frame["trade_date"] = frame["ts"].dt.tz_convert("UTC").dt.date
    frame = frame.sort_values(["symbol", "ts", "ingested_at"]).drop_duplicates(
        ["symbol", "interval", "ts"], keep="last"
    )
    frame["typical_pv"] = (frame["high"] + frame["low"] + frame["close"]) / 3 * frame["volume"]
    grouped = frame.groupby(["symbol", "trade_date"], sort=True)
    out = pd.DataFrame(
        {
            "interval": grouped["interval"].first(),
            "daily_open": grouped["open"].first(),
            "daily_high": grouped["high"].max(),
            "daily_low": grouped["low"].min(),
            "daily_close": grouped["close"].last(),
            "daily_volume": grouped["volume"].sum(),
            "bar_count": grouped.size(),
            "typical_pv": grouped["typical_pv"].sum(),
            "first_bar_ts": grouped["ts"].min(),
            "last_bar_ts": grouped["ts"].max(),
        }
    ).reset_index()
    out["daily_change_pct"] = (out["daily_close"] - out["daily_open"]) / out["daily_open"] * 100
    out["vwap"] = np.where(
        out["daily_volume"] > 0, out["typical_pv"] / out["daily_volume"].replace(0, np.nan), np.nan
    )
    prev_close = out.groupby("symbol")["daily_close"].shift(1)
    prev_date = out.groupby("symbol")["trade_date"].shift(1)
    gap = (pd.to_datetime(out["trade_date"]) - pd.to_datetime(prev_date)).dt.days
    out["prev_close"] = prev_close.where(gap <= lookback_days)
    out["return_pct"] = (out["daily_close"] - out["prev_close"]) / out["prev_close"] * 100
    out["range_pct"] = (out["daily_high"] - out["daily_low"]) / out["daily_open"] * 100
    return out.drop(columns="typical_pv")


def put_raw_realtime(
    client,
    bucket: str,
    ticks: list[RealtimeTick],
    ticks_per_file: int,
    topic: str = "ticks",
    partition: int = 0,
    first_offset: int = 0,
) -> list[str]:
    """Ticks as raw objects in their event hour's folder, `ticks_per_file` per object."""
    by_hour: dict = defaultdict(list)
    for tick in ticks:
        by_hour[lake.raw_realtime_prefix(tick.event_time)].append(tick)
    keys, offset = [], first_offset
    for prefix in sorted(by_hour):
        hour = by_hour[prefix]
        for start in range(0, len(hour), ticks_per_file):
            lines = raw_lines(hour[start : start + ticks_per_file], topic, partition, offset)
            name = lake.OffsetRange(topic, partition, offset, offset + len(lines) - 1).object_name()
            client.put_object(Bucket=bucket, Key=prefix + name, Body=b"\n".join(lines) + b"\n")
            keys.append(prefix + name)
            offset += len(lines)
    return keys


def reference_windows(
    ticks: list[RealtimeTick], window_size: str, size_seconds: int, slide_seconds: int
) -> pd.DataFrame:
    """Sliding-window metrics by pandas: every window [k*slide, k*slide + size) holding a tick."""
    frame = pd.DataFrame([tick.model_dump() for tick in ticks])
    exact = (frame["event_time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    last_start = (np.floor(exact / slide_seconds) * slide_seconds).astype("int64")
    pieces = []
    for back in range(size_seconds // slide_seconds):
        piece = frame.copy()
        piece["start"] = last_start - back * slide_seconds
        pieces.append(piece)
    exploded = pd.concat(pieces, ignore_index=True)
    exploded["pv"] = exploded["price"] * exploded["size"]
    grouped = exploded.groupby(["symbol", "start"])
    out = pd.DataFrame(
        {
            "avg_price": grouped["price"].mean(),
            "volatility": grouped["price"].std(ddof=0),
            "pv": grouped["pv"].sum(),
            "total_volume": grouped["size"].sum(),
            "tick_count": grouped.size(),
            "min_price": grouped["price"].min(),
            "max_price": grouped["price"].max(),
        }
    ).reset_index()
    out["vwap"] = (out["pv"] / out["total_volume"]).where(out["total_volume"] > 0)
    out["window_size"] = window_size
    out["window_start"] = pd.to_datetime(out["start"], unit="s", utc=True)
    out["window_end"] = out["window_start"] + pd.Timedelta(seconds=size_seconds)
    return out.drop(columns=["pv", "start"])
