"""Data checks after a load: counts agree hop to hop, keys are unique, values are sane.

`warehouse_quality` is the quality suite's warehouse side (`stocklake check`): the
processed -> warehouse row count and the table's checksum per date, as quality_results rows.

For each trading date: the symbols with bars in the raw zone, the rows of the
processed partition and the rows in the warehouse must agree (one row per
symbol and day); no key appears twice; low <= open, close <= high; volume >= 0.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq

from loaders.backends import connect_warehouse
from loaders.governance import previous_checksum
from loaders.tables import (
    DAILY_FEATURES,
    DAILY_METRICS,
    INTRADAY_FEATURES,
    REALTIME_WINDOW_METRICS,
    WarehouseTable,
)
from stocklake import lake
from stocklake.governance import (
    QUALITY_RESULTS_COLUMNS,
    CheckName,
    CheckStatus,
    Dataset,
    Severity,
    rows_checksum,
)
from stocklake.s3 import lake_filesystem
from stocklake.schemas import WINDOW_SIZES, arrow_schema
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


# ------------------------------------------------- the quality suite's warehouse side

# The quality suite's datasets (stocklake.governance.Dataset) that are loaded to a table.
WAREHOUSE_TABLES: dict[str, WarehouseTable] = {
    Dataset.DAILY_METRICS.value: DAILY_METRICS,
    Dataset.DAILY_FEATURES.value: DAILY_FEATURES,
    Dataset.INTRADAY_FEATURES.value: INTRADAY_FEATURES,
    Dataset.WINDOW_METRICS.value: REALTIME_WINDOW_METRICS,
}


def _result_row(
    settings: Settings,
    context: tuple[str, str, str],
    check: CheckName,
    passed: bool,
    observed: object,
    expected: object,
    detail: str,
) -> dict[str, Any]:
    """One QUALITY_RESULTS_COLUMNS row; `context` is (run_id, dataset, partition_name)."""
    run_id, dataset, partition_name = context
    fails = check.value in settings.quality_fail_check_names
    severity = Severity.FAIL if fails else Severity.WARN
    status = CheckStatus.PASSED if passed else CheckStatus.FAILED if fails else CheckStatus.WARNED
    values = (run_id, dataset, partition_name, check.value, severity.value, status.value)
    values += (str(observed), str(expected), detail, datetime.now(UTC))
    return dict(zip((name for name, _ in QUALITY_RESULTS_COLUMNS), values, strict=True))


def _lake_prefixes(table: WarehouseTable, day: date) -> list[str]:
    if table is REALTIME_WINDOW_METRICS:
        return [lake.processed_realtime_prefix(size, day) for size in WINDOW_SIZES]
    return [lake.processed_date_prefix(table.source_prefix, day)]


def lake_partition_rows(settings: Settings, table: WarehouseTable, day: date) -> list[tuple]:
    """The rows of a date's processed partition(s) loaded into `table` (source columns)."""
    fs = lake_filesystem(settings)
    fs.invalidate_cache()
    schema = arrow_schema(table.source_columns)
    rows: list[tuple] = []
    for prefix in _lake_prefixes(table, day):
        try:
            paths = sorted(
                p for p in fs.find(f"{settings.lake_bucket}/{prefix}") if p.endswith(".parquet")
            )
        except FileNotFoundError:
            paths = []
        for path in paths:
            data = pq.read_table(io.BytesIO(fs.cat(path)), columns=list(table.source_names))
            columns = [column.to_pylist() for column in data.cast(schema).columns]
            rows.extend(zip(*columns, strict=True))
    return rows


def warehouse_date_rows(
    settings: Settings, table: WarehouseTable, day: date, schema: str | None = None
) -> list[tuple]:
    """The rows of `table` for one date (its trade_date, or its window_start's UTC date)."""
    names = ", ".join(table.source_names)
    if table is REALTIME_WINDOW_METRICS:
        # A day either side in SQL (the session's time zone may shift a date), exact here.
        low, high = day - timedelta(days=1), day + timedelta(days=2)
        where = f"window_start >= CAST('{low}' AS DATE) AND window_start < CAST('{high}' AS DATE)"
    else:
        where = f"trade_date = CAST('{day.isoformat()}' AS DATE)"
    with connect_warehouse(settings, schema=schema) as warehouse:
        _, rows = warehouse.query(f"SELECT {names} FROM {table.name} WHERE {where}")
    if table is REALTIME_WINDOW_METRICS:
        at = table.source_names.index("window_start")
        rows = [row for row in rows if row[at].astimezone(UTC).date() == day]
    return [tuple(row) for row in rows]


def warehouse_quality(
    settings: Settings, dataset: str, day: date, run_id: str, schema: str | None = None
) -> list[dict[str, Any]]:
    """The quality suite's warehouse checks of one date (QUALITY_RESULTS_COLUMNS rows):
    processed -> warehouse row count, and the table's checksum for that date compared with
    the processed partition's (the core's canonical `rows_checksum`, as the lake side).

    `partition_name` is "<table> date=YYYY-MM-DD"; the checksum row's detail says whether it
    equals the one an earlier run stored.
    """
    table = WAREHOUSE_TABLES[dataset]
    context = (run_id, dataset, f"{table.name} date={day.isoformat()}")
    lake_rows = lake_partition_rows(settings, table, day)
    stored = warehouse_date_rows(settings, table, day, schema=schema)
    count = _result_row(
        settings,
        context,
        CheckName.ROW_COUNTS,
        len(stored) == len(lake_rows),
        len(stored),
        len(lake_rows),
        f"{len(lake_rows)} rows in the processed partition(s) of {day}, "
        f"{len(stored)} in {table.name}",
    )
    key = [table.source_names.index(name) for name in table.key]
    observed, expected = rows_checksum(stored, key), rows_checksum(lake_rows, key)
    previous = previous_checksum(settings, dataset, context[2], schema, before_run=run_id)
    detail = (
        "the processed partition's rows"
        if observed == expected
        else ("differs from the processed partition's rows (load the date again)")
    )
    if previous is not None:
        detail += (
            "; same as the last run" if previous == observed else "; changed since the last run"
        )
    checksum = _result_row(
        settings, context, CheckName.CHECKSUM, observed == expected, observed, expected, detail
    )
    return [count, checksum]
