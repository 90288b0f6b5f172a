"""Data checks after a load: counts agree hop to hop, keys are unique, values are sane.

For each trading date: the symbols with bars in the raw zone, the rows of the
processed partition and the rows in the warehouse must agree (one row per
symbol and day); no key appears twice; low <= open, close <= high; volume >= 0.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date

import pyarrow.parquet as pq

from loaders.backends import connect_warehouse
from loaders.tables import DAILY_METRICS
from stocklake import lake
from stocklake.s3 import lake_filesystem
from stocklake.settings import Settings


class DataCheckError(AssertionError):
    """One or more data checks failed; the message lists each with its date."""


@dataclass
class DayCounts:
    raw_records: int = 0
    raw_symbols: int = 0
    processed_rows: int = 0
    processed_duplicate_keys: int = 0
    warehouse_rows: int = 0
    warehouse_duplicate_keys: int = 0
    warehouse_bad_ohlc: int = 0
    warehouse_negative_volume: int = 0


@dataclass
class CheckReport:
    days: dict[str, DayCounts] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "days": {day: asdict(counts) for day, counts in self.days.items()},
            "failures": list(self.failures),
            "passed": not self.failures,
        }

    def raise_if_failed(self) -> None:
        if self.failures:
            raise DataCheckError("data checks failed: " + "; ".join(self.failures))


def evaluate(days: dict[str, DayCounts]) -> list[str]:
    """The failed checks, worded for a person (pure: counts in, findings out)."""
    failures = []
    for day, c in sorted(days.items()):
        if c.raw_symbols == 0:
            failures.append(f"{day}: no bars in {lake.RAW_HISTORICAL}")
        if c.processed_rows != c.raw_symbols:
            failures.append(
                f"{day}: {c.raw_symbols} symbols in raw but {c.processed_rows} processed rows"
            )
        if c.warehouse_rows != c.processed_rows:
            failures.append(
                f"{day}: {c.processed_rows} processed rows but {c.warehouse_rows} in "
                f"{DAILY_METRICS.name}"
            )
        for what, count in (
            ("duplicate (symbol, trade_date) keys in processed", c.processed_duplicate_keys),
            (f"duplicate keys in {DAILY_METRICS.name}", c.warehouse_duplicate_keys),
            ("rows with low > open/close or high < open/close", c.warehouse_bad_ohlc),
            ("rows with negative volume", c.warehouse_negative_volume),
        ):
            if count:
                failures.append(f"{day}: {count} {what}")
    return failures


def raw_symbol_counts(settings: Settings, days: Iterable[date]) -> dict[str, tuple[int, int]]:
    """Per date: (distinct (symbol, ts) bars, distinct symbols) in the raw zone."""
    fs = lake_filesystem(settings)
    counts = {}
    for day in days:
        prefix = f"{settings.lake_bucket}/{lake.raw_historical_prefix(day)}"
        bars: set[tuple[str, str]] = set()
        try:
            paths = [p for p in fs.find(prefix) if p.endswith(lake.RAW_SUFFIX)]
        except FileNotFoundError:
            paths = []
        for path in paths:
            for line in fs.cat(path).splitlines():
                if line.strip():
                    record = json.loads(line)
                    bars.add((record["symbol"], record["ts"]))
        counts[day.isoformat()] = (len(bars), len({symbol for symbol, _ in bars}))
    return counts


def processed_daily_counts(settings: Settings, days: Iterable[str | date]) -> dict[str, int]:
    """Rows in each date's processed/historical partition (0 when it is missing)."""
    return {day: rows for day, (rows, _) in _processed(settings, days).items()}


def _processed(settings: Settings, days: Iterable[str | date]) -> dict[str, tuple[int, int]]:
    fs = lake_filesystem(settings)
    fs.invalidate_cache()
    result = {}
    for day in days:
        day = date.fromisoformat(day) if isinstance(day, str) else day
        prefix = f"{settings.lake_bucket}/{lake.processed_historical_prefix(day)}"
        try:
            paths = [p for p in fs.find(prefix) if p.endswith(".parquet")]
        except FileNotFoundError:
            paths = []
        keys: list[tuple[str, str]] = []
        for path in paths:
            table = pq.read_table(io.BytesIO(fs.cat(path)), columns=["symbol", "trade_date"])
            keys.extend(
                zip(
                    table["symbol"].to_pylist(),
                    map(str, table["trade_date"].to_pylist()),
                    strict=True,
                )
            )
        result[day.isoformat()] = (len(keys), len(keys) - len(set(keys)))
    return result


# Identifiers and columns are the code's own; there are no values to bind.
_WAREHOUSE_COUNTS = f"""
SELECT CAST(trade_date AS VARCHAR(10)) AS day,
       COUNT(*) AS row_count,
       COUNT(*) - COUNT(DISTINCT symbol) AS duplicate_keys,
       SUM(CASE WHEN daily_low > LEAST(daily_open, daily_close)
                  OR daily_high < GREATEST(daily_open, daily_close) THEN 1 ELSE 0 END) AS bad_ohlc,
       SUM(CASE WHEN daily_volume < 0 THEN 1 ELSE 0 END) AS negative_volume
FROM {DAILY_METRICS.name}
GROUP BY trade_date
"""


def warehouse_daily_counts(settings: Settings, schema: str | None = None) -> dict[str, tuple]:
    with connect_warehouse(settings, schema=schema) as warehouse:
        _, rows = warehouse.query(_WAREHOUSE_COUNTS)
    return {str(row[0]): tuple(int(v or 0) for v in row[1:]) for row in rows}


def check_daily(
    settings: Settings, days: Iterable[str | date], schema: str | None = None
) -> CheckReport:
    """Run every check for the given trading dates against the lake and the warehouse."""
    wanted = sorted(date.fromisoformat(d) if isinstance(d, str) else d for d in days)
    raw = raw_symbol_counts(settings, wanted)
    processed = _processed(settings, wanted)
    warehouse = warehouse_daily_counts(settings, schema=schema)
    report = CheckReport()
    for day in wanted:
        key = day.isoformat()
        rows, dups, bad, negative = warehouse.get(key, (0, 0, 0, 0))
        report.days[key] = DayCounts(
            raw_records=raw[key][0],
            raw_symbols=raw[key][1],
            processed_rows=processed[key][0],
            processed_duplicate_keys=processed[key][1],
            warehouse_rows=rows,
            warehouse_duplicate_keys=dups,
            warehouse_bad_ohlc=bad,
            warehouse_negative_volume=negative,
        )
    report.failures = evaluate(report.days)
    return report
