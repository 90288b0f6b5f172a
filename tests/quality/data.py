"""Quality-suite test data from the bundled real files (data/daily, data/intraday), in the
shapes the lake holds: raw bars as the landing writes them, daily metrics as Spark does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

from stocklake import lake
from stocklake.schemas import HISTORICAL_BAR_COLUMNS, format_ts
from tests.loaders.data import DATA
from tests.reference import DAILY_FILES

INGESTED = datetime(2021, 1, 4, tzinfo=UTC)


def _raw(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Bars (symbol, ts, open, high, low, close, volume) as raw/historical rows."""
    frame = bars.assign(
        schema_version=1,
        interval=interval,
        adj_close=bars.get("adj_close"),
        volume=bars["volume"].astype("int64"),
        source="csv",
        ingested_at=pd.Timestamp(INGESTED),
        _topic="stocklake.historical.bars",
        _partition=0,
        _offset=range(len(bars)),
        _landed_at=format_ts(INGESTED),
    )
    return frame.loc[:, [name for name, _ in HISTORICAL_BAR_COLUMNS]].reset_index(drop=True)


def daily_bars(symbol: str) -> pd.DataFrame:
    """A symbol's real daily bars (2019-01-02 .. 2020-12-31) as raw bars at 00:00 UTC."""
    bars = pd.read_csv(DATA / "daily" / DAILY_FILES[symbol], parse_dates=["date"])
    bars["ts"] = bars["date"].dt.tz_localize("UTC")
    return _raw(bars.assign(symbol=symbol), "1d")


def minute_bars() -> pd.DataFrame:
    """META's real 1-minute bars of the week of 2019-05-20 as raw bars (UTC)."""
    bars = pd.read_csv(DATA / "intraday" / "fb_week_of_may_20_per_minute.csv")
    local = pd.to_datetime(bars["date"], format="%Y-%m-%d %H-%M")
    bars["ts"] = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    return _raw(bars.assign(symbol="META", adj_close=None), "1m")


def daily_metrics(symbols: tuple[str, ...] = tuple(DAILY_FILES)) -> pd.DataFrame:
    """daily_metrics columns computed from the real daily bars (one bar per day)."""
    frames = []
    for symbol in symbols:
        bars = daily_bars(symbol)
        prev_close = bars["close"].shift(1)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "trade_date": bars["ts"].dt.date,
                    "interval": "1d",
                    "daily_open": bars["open"],
                    "daily_high": bars["high"],
                    "daily_low": bars["low"],
                    "daily_close": bars["close"],
                    "daily_volume": bars["volume"],
                    "daily_change_pct": (bars["close"] / bars["open"] - 1) * 100,
                    "bar_count": 1,
                    "vwap": (bars["high"] + bars["low"] + bars["close"]) / 3,
                    "prev_close": prev_close,
                    "return_pct": (bars["close"] / prev_close - 1) * 100,
                    "range_pct": (bars["high"] - bars["low"]) / bars["low"] * 100,
                    "first_bar_ts": bars["ts"],
                    "last_bar_ts": bars["ts"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def raw_lines(bars: pd.DataFrame) -> bytes:
    """Raw bars as the landing writes them: one JSON object per line, wire timestamps."""
    lines = []
    for record in bars.to_dict("records"):
        record["ts"] = format_ts(record["ts"].to_pydatetime())
        record["ingested_at"] = format_ts(record["ingested_at"].to_pydatetime())
        record["adj_close"] = None if pd.isna(record["adj_close"]) else record["adj_close"]
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


def raw_object_key(day, first_offset: int, last_offset: int) -> str:
    name = lake.OffsetRange("stocklake.historical.bars", 0, first_offset, last_offset).object_name()
    return lake.raw_historical_prefix(day) + name
