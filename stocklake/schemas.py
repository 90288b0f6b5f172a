"""Data contracts, defined once: wire records and the processed tables.

Wire records travel as JSON on Kafka (key = symbol) and land unchanged in
the raw zone as JSON lines, with landing metadata added (see RAW_METADATA).
The processed column lists are shared by the Spark jobs (writers) and the
warehouse loaders (readers).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

SCHEMA_VERSION = 1


class Interval(StrEnum):
    """A bar's length: the one list of intervals (the CLI, the DAGs and the models use it)."""

    D1 = "1d"
    H1 = "1h"
    M5 = "5m"
    M1 = "1m"

    @property
    def seconds(self) -> int:
        """The bar's length in seconds (a daily bar spans a day; its session is shorter)."""
        return INTERVAL_SECONDS[self]


INTERVAL_SECONDS: dict[Interval, int] = {
    Interval.D1: 86400,
    Interval.H1: 3600,
    Interval.M5: 300,
    Interval.M1: 60,
}


class HistoricalSource(StrEnum):
    """Where historical bars come from (the `source` field of every bar)."""

    YFINANCE = "yfinance"
    CSV = "csv"
    SYNTHETIC = "synthetic"


# The `source` the project's own tick simulator stamps; a foreign feed may name its own.
SIMULATOR_SOURCE = "simulator"


class Clock(StrEnum):
    """How the tick simulator stamps event times."""

    LIVE = "live"  # wall-clock now
    ACCELERATED = "accelerated"  # a simulated session from --start, as fast as possible
    INTERVAL = "interval"  # one tick per symbol every --interval seconds, stamped now


class RecordKind(StrEnum):
    """The two kinds of wire record, each with its topic, raw zone and model."""

    HISTORICAL = "historical"
    REALTIME = "realtime"


class WarehouseKind(StrEnum):
    """The warehouse backends the loaders write to."""

    POSTGRES = "postgres"
    SNOWFLAKE = "snowflake"


# A ticker: a letter, or ^ for an index (^GSPC), then letters, digits, '.', '-' or '='
# (BRK.B, BRK-B, EURUSD=X, ES=F). The one symbol rule: the models and the CLI use it.
SYMBOL_PATTERN = r"^[A-Z^][A-Z0-9.\-=]{0,15}$"
SYMBOL_RULE = "an upper-case letter or ^, then up to 15 upper-case letters, digits, '.', '-' or '='"
_SYMBOL = re.compile(SYMBOL_PATTERN)


def is_symbol(text: str) -> bool:
    """Whether `text` is a symbol by the contract's rule (SYMBOL_RULE)."""
    return _SYMBOL.fullmatch(text) is not None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone; send UTC (ending in Z or +00:00)")
    return value.astimezone(UTC)


# Plausible bounds, so every aggregate downstream stays finite and within int64: a day's
# or a window's volume sums stay far below 2^63 for millions of bars, and a price ratio
# (range, change, return) of MAX_PRICE / MIN_PRICE is ~1e13, finite as a double.
INT64_MAX = 2**63 - 1
MAX_VOLUME = 10**12  # shares in one bar (volume) or one trade (size)
MIN_PRICE = 1e-6
MAX_PRICE = 1e7
# No market data before this instant is supported (Spark, parquet and the warehouses agree).
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def format_ts(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, the one timestamp form on the wire."""
    return _utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Validated in pydantic-core (time zone required, not before EARLIEST_TIME), then normalised
# to UTC: the landing consumer validates every record, so per-field Python hooks are kept few.
# In JSON it is written in the one wire form (`format_ts`): every writer calls model_dump_json.
UTCDatetime = Annotated[
    AwareDatetime,
    Field(ge=EARLIEST_TIME),
    AfterValidator(lambda value: value.astimezone(UTC)),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
]
Price = Annotated[float, Field(ge=MIN_PRICE, le=MAX_PRICE, allow_inf_nan=False)]
Volume = Annotated[int, Field(ge=0, le=MAX_VOLUME)]
# Strictly an integer equal to SCHEMA_VERSION: JSON true or 1.0 is not version 1 (Literal[1]
# takes both). Bounds, not a Python check, so pydantic-core alone validates it.
SchemaVersion = Annotated[int, Field(strict=True, ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: SchemaVersion = SCHEMA_VERSION
    symbol: str = Field(pattern=SYMBOL_PATTERN)

    def to_json(self) -> bytes:
        """The record's wire bytes: compact JSON, timestamps in the one wire form."""
        return self.__pydantic_serializer__.to_json(self)


class HistoricalBar(_Record):
    """One OHLCV bar; `ts` is the bar's start in UTC (00:00 UTC for daily bars)."""

    ts: UTCDatetime
    interval: Interval
    open: Price
    high: Price
    low: Price
    close: Price
    adj_close: Price | None = None
    volume: Volume
    source: HistoricalSource
    ingested_at: UTCDatetime

    @model_validator(mode="after")
    def _ohlc_consistent(self) -> HistoricalBar:
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValueError(
                f"OHLC inconsistent: low={self.low} high={self.high} "
                f"open={self.open} close={self.close}"
            )
        return self

    @property
    def event_time(self) -> datetime:
        return self.ts


class RealtimeTick(_Record):
    """One trade tick from the simulator (or a live feed)."""

    event_time: UTCDatetime
    price: Price
    size: Volume
    sequence: int = Field(ge=0, le=INT64_MAX)
    source: str = Field(min_length=1, max_length=32)


RECORD_TYPES: dict[RecordKind, type[_Record]] = {
    RecordKind.HISTORICAL: HistoricalBar,
    RecordKind.REALTIME: RealtimeTick,
}


def repeated_keys(raw: bytes | str) -> list[str]:
    """Keys that an object in this JSON text gives more than once ([] if none, or not JSON).

    JSON readers keep a repeated key's last value silently; a wire record may not repeat one.
    """
    repeated: list[str] = []

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if len(found) < len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen and key not in repeated:
                    repeated.append(key)
                seen.add(key)
        return found

    try:
        json.loads(raw, object_pairs_hook=members)
    except (ValueError, RecursionError):
        return []
    return repeated


Columns = tuple[tuple[str, str], ...]  # (name, kind); kinds are the keys of COLUMN_TYPES

# Columns the landing consumer adds to every raw line, for lineage and dedup.
RAW_METADATA: Columns = (
    ("_topic", "string"),
    ("_partition", "int"),
    ("_offset", "long"),
    ("_landed_at", "string"),
)

# Column lists use one small type vocabulary: string, int, long, double,
# date, timestamp. `spark_ddl` and `arrow_schema` translate it.
HISTORICAL_BAR_COLUMNS: Columns = (
    ("schema_version", "int"),
    ("symbol", "string"),
    ("ts", "timestamp"),
    ("interval", "string"),
    ("open", "double"),
    ("high", "double"),
    ("low", "double"),
    ("close", "double"),
    ("adj_close", "double"),
    ("volume", "long"),
    ("source", "string"),
    ("ingested_at", "timestamp"),
) + RAW_METADATA

REALTIME_TICK_COLUMNS: Columns = (
    ("schema_version", "int"),
    ("symbol", "string"),
    ("event_time", "timestamp"),
    ("price", "double"),
    ("size", "long"),
    ("sequence", "long"),
    ("source", "string"),
) + RAW_METADATA

# processed/historical/date=YYYY-MM-DD/ (the partition column `date` is in the path).
DAILY_METRICS_COLUMNS: Columns = (
    ("symbol", "string"),
    ("trade_date", "date"),
    ("interval", "string"),
    ("daily_open", "double"),
    ("daily_high", "double"),
    ("daily_low", "double"),
    ("daily_close", "double"),
    ("daily_volume", "long"),
    ("daily_change_pct", "double"),
    ("bar_count", "int"),
    ("vwap", "double"),
    ("prev_close", "double"),
    ("return_pct", "double"),
    ("range_pct", "double"),
    ("first_bar_ts", "timestamp"),
    ("last_bar_ts", "timestamp"),
)
DAILY_METRICS_KEY = ("symbol", "trade_date")

# processed/features/daily/date=YYYY-MM-DD/: rolling features of the daily metrics, per
# symbol over its rows (trading days present in the lake). Defined in the README.
SMA_WINDOWS = (7, 14, 30)
VOLATILITY_WINDOW = 20
VWAP_WINDOW = 20
ZSCORE_WINDOW = 60
TRADING_DAYS_PER_YEAR = 252
DAILY_FEATURES_COLUMNS: Columns = (
    ("symbol", "string"),
    ("trade_date", "date"),
    ("close", "double"),
    ("volume", "long"),
    ("return_pct", "double"),
    ("log_return", "double"),
    *((f"sma_{n}", "double") for n in SMA_WINDOWS),
    (f"volatility_{VOLATILITY_WINDOW}d", "double"),
    (f"vwap_{VWAP_WINDOW}d", "double"),
    ("drawdown_pct", "double"),
    (f"return_zscore_{ZSCORE_WINDOW}d", "double"),
)
DAILY_FEATURES_KEY = ("symbol", "trade_date")

# processed/features/intraday/date=YYYY-MM-DD/: rolling features of 1-minute bars, per
# symbol within one session (trade date), over the last N minutes of event time.
INTRADAY_WINDOWS_MINUTES = (5, 15, 60)
INTRADAY_FEATURES_COLUMNS: Columns = (
    ("symbol", "string"),
    ("trade_date", "date"),
    ("bar_ts", "timestamp"),
    ("close", "double"),
    ("volume", "long"),
    *((f"return_{n}m", "double") for n in INTRADAY_WINDOWS_MINUTES),
    *((f"realized_vol_{n}m", "double") for n in INTRADAY_WINDOWS_MINUTES),
    *((f"vwap_{n}m", "double") for n in INTRADAY_WINDOWS_MINUTES),
    ("drawdown_from_high_pct", "double"),
)
INTRADAY_FEATURES_KEY = ("symbol", "bar_ts")

# The warehouse table `model_runs` (key: model_name, version, part, scorer, metric):
# one row per metric of one scorer on one part of the split, for every trained version.
MODEL_RUNS_COLUMNS: Columns = (
    ("model_name", "string"),
    ("version", "int"),
    ("part", "string"),  # validate | test
    ("scorer", "string"),  # model | always_up | yesterday_sign | stress_index
    ("metric", "string"),  # accuracy, roc_auc, log_loss, precision, recall, f1, threshold
    ("value", "double"),
    ("rows", "long"),
    ("period_start", "date"),
    ("period_end", "date"),
    ("data_fingerprint", "string"),
    ("git_commit", "string"),
    ("trained_at", "timestamp"),
)
MODEL_RUNS_KEY = ("model_name", "version", "part", "scorer", "metric")

# processed/realtime/window=15m|1h/date=YYYY-MM-DD/ (date of window_start).
REALTIME_WINDOW_COLUMNS: Columns = (
    ("symbol", "string"),
    ("window_size", "string"),
    ("window_start", "timestamp"),
    ("window_end", "timestamp"),
    ("avg_price", "double"),
    ("volatility", "double"),
    ("vwap", "double"),
    ("total_volume", "long"),
    ("tick_count", "long"),
    ("min_price", "double"),
    ("max_price", "double"),
)
REALTIME_WINDOW_KEY = ("symbol", "window_size", "window_start")
WINDOW_SIZES: dict[str, int] = {"15m": 15 * 60, "1h": 60 * 60}


@dataclass(frozen=True)
class EngineTypes:
    """How one column kind is typed by each engine that holds it."""

    spark: str  # Spark SQL DDL (also a valid `Column.cast` target)
    arrow: str  # the pyarrow factory, see `arrow_type`
    postgres: str
    snowflake: str


# The one map from a column kind to every engine's type. Column lists (here and in
# loaders/tables.py) use only these kinds; Spark schemas, Arrow schemas and SQL DDL
# are all derived from this table.
COLUMN_TYPES: dict[str, EngineTypes] = {
    "string": EngineTypes("STRING", "string", "text", "VARCHAR"),
    "int": EngineTypes("INT", "int32", "integer", "INTEGER"),
    "long": EngineTypes("BIGINT", "int64", "bigint", "BIGINT"),
    "double": EngineTypes("DOUBLE", "float64", "double precision", "DOUBLE"),
    "date": EngineTypes("DATE", "date32", "date", "DATE"),
    "timestamp": EngineTypes("TIMESTAMP", "timestamp_utc", "timestamptz", "TIMESTAMP_TZ"),
}


def spark_type(kind: str) -> str:
    """The Spark SQL type of a column kind."""
    return COLUMN_TYPES[kind].spark


def sql_type(kind: str, backend: WarehouseKind | str) -> str:
    """The warehouse SQL type of a column kind on a backend."""
    return getattr(COLUMN_TYPES[kind], WarehouseKind(backend).value)


def spark_ddl(columns: Columns) -> str:
    """A Spark DDL schema string, e.g. for `spark.read.schema(...)`."""
    return ", ".join(f"`{name}` {spark_type(kind)}" for name, kind in columns)


def arrow_type(kind: str):  # -> pyarrow.DataType
    """The pyarrow type of a column kind (timestamps in UTC microseconds)."""
    import pyarrow as pa

    factory = COLUMN_TYPES[kind].arrow
    return pa.timestamp("us", tz="UTC") if factory == "timestamp_utc" else getattr(pa, factory)()


def arrow_schema(columns: Columns):  # -> pyarrow.Schema
    """The pyarrow schema of a column list."""
    import pyarrow as pa

    return pa.schema([(name, arrow_type(kind)) for name, kind in columns])


@dataclass(frozen=True)
class QuarantineRecord:
    """A record set aside, with why and where it came from.

    `raw` is the Kafka value as text, for people (bytes that are not UTF-8 become \\xNN
    escapes, so two values can read alike); `raw_base64` is the value exactly, in base64
    (null for a null value): `original_value` gives back what Kafka held.
    """

    reason: str
    raw: str
    raw_base64: str | None
    topic: str
    partition: int
    offset: int
    quarantined_at: datetime

    @classmethod
    def of_value(
        cls,
        value: bytes | None,
        *,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        quarantined_at: datetime,
    ) -> QuarantineRecord:
        """The quarantine record of one Kafka value, both forms made from its bytes."""
        return cls(
            reason=reason,
            raw=(value or b"").decode("utf-8", errors="backslashreplace"),
            raw_base64=None if value is None else base64.b64encode(value).decode("ascii"),
            topic=topic,
            partition=partition,
            offset=offset,
            quarantined_at=quarantined_at,
        )

    @staticmethod
    def original_value(line: dict[str, Any]) -> bytes | None:
        """The exact Kafka value of a quarantine line read back from the lake."""
        encoded = line["raw_base64"]
        return None if encoded is None else base64.b64decode(encoded, validate=True)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "reason": self.reason,
                "raw": self.raw,
                "raw_base64": self.raw_base64,
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "quarantined_at": format_ts(self.quarantined_at),
            },
            separators=(",", ":"),
        ).encode()


def trade_date_of(ts: datetime) -> date:
    """The trading date a bar belongs to: its UTC date (US sessions never cross it)."""
    return _utc(ts).date()
