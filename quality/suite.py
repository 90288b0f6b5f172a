"""The quality suite, declared once: per dataset, where a date's partitions live in the lake,
their columns and key, and the checks they run.

Column lists and keys come from `stocklake.schemas`, folders from `stocklake.lake`; the
checks (`quality/checks.py`, `quality/continuity.py`) and the runner (`quality/run.py`) read
only this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from stocklake import lake
from stocklake.governance import CheckName, Dataset
from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    DAILY_FEATURES_KEY,
    DAILY_METRICS_COLUMNS,
    DAILY_METRICS_KEY,
    HISTORICAL_BAR_COLUMNS,
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_KEY,
    REALTIME_TICK_COLUMNS,
    REALTIME_WINDOW_COLUMNS,
    REALTIME_WINDOW_KEY,
    WINDOW_SIZES,
    Columns,
    Interval,
)

# A raw bar's identity: a re-delivery of the same bar repeats it (the Spark job keeps the
# latest); a tick's: the simulator's sequence restarts each run, so with its event time.
RAW_BAR_KEY = ("symbol", "interval", "ts")
RAW_TICK_KEY = ("symbol", "event_time", "sequence")

C = CheckName


@dataclass(frozen=True)
class Ohlc:
    """A dataset's open, high, low and close columns."""

    open: str
    high: str
    low: str
    close: str


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the suite: its partitions, columns, key and checks."""

    dataset: Dataset
    columns: Columns
    key: tuple[str, ...]
    checks: tuple[CheckName, ...]
    # The lake prefixes (relative to the bucket) holding one date's rows.
    prefixes: Callable[[date], tuple[str, ...]]
    raw: bool  # JSON lines (raw zone) or parquet (processed zone)
    ohlc: Ohlc | None = None
    volume: str | None = None
    # The column giving a row's time, for the continuity checks.
    time_column: str | None = None
    # Only rows whose interval is this one take part in a continuity check (raw bars).
    minute_interval: str | None = None
    daily_interval: str | None = None
    # The dataset whose rows this one's row count must match (see quality/lake_read.py).
    counted_from: Dataset | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def key_positions(self) -> tuple[int, ...]:
        names = self.column_names
        return tuple(names.index(name) for name in self.key)


def _date_prefix(base: str) -> Callable[[date], tuple[str, ...]]:
    return lambda day: (lake.processed_date_prefix(base, day),)


SUITE: dict[Dataset, DatasetSpec] = {
    spec.dataset: spec
    for spec in (
        DatasetSpec(
            Dataset.RAW_BARS,
            HISTORICAL_BAR_COLUMNS,
            RAW_BAR_KEY,
            (C.KEYS_NOT_NULL, C.DUPLICATE_TIMESTAMPS, C.OHLC_CONSISTENT, C.VOLUME_NON_NEGATIVE)
            + (C.MINUTE_CONTINUITY, C.DAILY_CONTINUITY),
            prefixes=lambda day: (lake.raw_historical_prefix(day),),
            raw=True,
            ohlc=Ohlc("open", "high", "low", "close"),
            volume="volume",
            time_column="ts",
            minute_interval=Interval.M1.value,
            daily_interval=Interval.D1.value,
        ),
        DatasetSpec(
            Dataset.RAW_TICKS,
            REALTIME_TICK_COLUMNS,
            RAW_TICK_KEY,
            (C.KEYS_NOT_NULL, C.DUPLICATE_TIMESTAMPS, C.VOLUME_NON_NEGATIVE),
            prefixes=lambda day: (lake.raw_realtime_day_prefix(day),),  # every hour
            raw=True,
            volume="size",
            time_column="event_time",
        ),
        DatasetSpec(
            Dataset.DAILY_METRICS,
            DAILY_METRICS_COLUMNS,
            DAILY_METRICS_KEY,
            (C.KEYS_NOT_NULL, C.KEYS_UNIQUE, C.OHLC_CONSISTENT, C.VOLUME_NON_NEGATIVE)
            + (C.DAILY_CONTINUITY, C.ROW_COUNTS, C.CHECKSUM),
            prefixes=lambda day: (lake.processed_historical_prefix(day),),
            raw=False,
            ohlc=Ohlc("daily_open", "daily_high", "daily_low", "daily_close"),
            volume="daily_volume",
            time_column="trade_date",
            counted_from=Dataset.RAW_BARS,
        ),
        DatasetSpec(
            Dataset.DAILY_FEATURES,
            DAILY_FEATURES_COLUMNS,
            DAILY_FEATURES_KEY,
            (C.KEYS_NOT_NULL, C.KEYS_UNIQUE, C.VOLUME_NON_NEGATIVE, C.ROW_COUNTS, C.CHECKSUM),
            prefixes=_date_prefix(lake.PROCESSED_FEATURES_DAILY),
            raw=False,
            volume="volume",
            time_column="trade_date",
            counted_from=Dataset.DAILY_METRICS,
        ),
        DatasetSpec(
            Dataset.INTRADAY_FEATURES,
            INTRADAY_FEATURES_COLUMNS,
            INTRADAY_FEATURES_KEY,
            (C.KEYS_NOT_NULL, C.KEYS_UNIQUE, C.VOLUME_NON_NEGATIVE, C.MINUTE_CONTINUITY)
            + (C.ROW_COUNTS, C.CHECKSUM),
            prefixes=_date_prefix(lake.PROCESSED_FEATURES_INTRADAY),
            raw=False,
            volume="volume",
            time_column="bar_ts",
            counted_from=Dataset.RAW_BARS,
        ),
        DatasetSpec(
            Dataset.WINDOW_METRICS,
            REALTIME_WINDOW_COLUMNS,
            REALTIME_WINDOW_KEY,
            (C.KEYS_NOT_NULL, C.KEYS_UNIQUE, C.VOLUME_NON_NEGATIVE, C.CHECKSUM),
            prefixes=lambda day: tuple(
                lake.processed_realtime_prefix(size, day) for size in WINDOW_SIZES
            ),
            raw=False,
            volume="total_volume",
            time_column="window_start",
        ),
    )
}


def spec_of(dataset: Dataset | str) -> DatasetSpec:
    return SUITE[Dataset(dataset)]
