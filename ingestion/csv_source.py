"""CSV bars: the bundled real files in `data/` and any user CSV with a column mapping.

Quirks of real files handled here: any column order, `2019-05-20 09-30`
intraday times in exchange time with no zone, float volumes (`148158800.0`),
float32 price noise (kept as given) and missing trading days (reported against
the exchange calendar, never filled).
Every bad value raises CsvError naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path

from pydantic import ValidationError

from ingestion.market_hours import EXCHANGE_TZ, DateRange, daily_bar_ts
from stocklake.schemas import HistoricalBar, HistoricalSource, Interval, trade_date_of
from stocklake.settings import PROJECT_ROOT
from stocklake.trading_calendar import trading_days

BUNDLED_DATA_DIR = PROJECT_ROOT / "data"


@dataclass(frozen=True)
class BundledFile:
    symbol: str
    relative_path: str
    interval: Interval

    @property
    def path(self) -> Path:
        return BUNDLED_DATA_DIR / self.relative_path


# Facebook's history is served by Yahoo under META since the 2022 rename, so
# both bundled Facebook files use META: one company, one symbol.
BUNDLED_FILES: tuple[BundledFile, ...] = (
    BundledFile("AAPL", "daily/apple.csv", Interval.D1),
    BundledFile("AMZN", "daily/amazon.csv", Interval.D1),
    BundledFile("GOOGL", "daily/google.csv", Interval.D1),
    BundledFile("META", "daily/facebook.csv", Interval.D1),
    BundledFile("NFLX", "daily/netflix.csv", Interval.D1),
    BundledFile("TSLA", "daily/tesla.csv", Interval.D1),
    BundledFile("^GSPC", "daily/sp500.csv", Interval.D1),
    BundledFile("META", "intraday/fb_week_of_may_20_per_minute.csv", Interval.M1),
)

REQUIRED_FIELDS = ("date", "open", "high", "low", "close", "volume")
OPTIONAL_FIELDS = ("adj_close", "symbol")
# Header spellings recognised without a mapping (compared case-insensitively).
_DEFAULT_HEADERS: dict[str, tuple[str, ...]] = {
    "date": ("date", "datetime", "timestamp", "time", "ts"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "adj_close": ("adj_close", "adj close", "adjclose", "adjusted_close"),
    "symbol": ("symbol", "ticker"),
}

# `2019-05-20 09-30`: the bundled intraday file writes a dash between hour and minute.
_DASHED_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2})-(\d{2})(?:-(\d{2}))?$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class CsvError(ValueError):
    """A CSV problem; the message names the file, the line and the column."""


class CsvNoBars(CsvError):
    """A good file with no bar for the symbol in the asked range."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which CSV header holds each bar field (`None`: the field is absent)."""

    date: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    adj_close: str | None = None
    symbol: str | None = None


def parse_column_mapping(text: str) -> dict[str, str]:
    """`date=Date,open=Open,...` -> {field: header}; unknown fields are an error."""
    mapping: dict[str, str] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, sep, header = part.partition("=")
        name = name.strip().lower()
        if not sep or not header.strip():
            raise CsvError(f"--columns entry {part!r} is not field=Header")
        if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            known = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
            raise CsvError(f"--columns names unknown field {name!r}; fields are {known}")
        mapping[name] = header.strip()
    return mapping


def resolve_columns(path: Path, headers: Sequence[str], explicit: dict[str, str]) -> ColumnMapping:
    """Match the file's headers to bar fields: explicit mapping first, then known spellings."""
    by_lower = {header.strip().lower(): header for header in headers}
    chosen: dict[str, str | None] = {}
    for name in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        if name in explicit:
            wanted = explicit[name]
            if wanted not in headers and wanted.lower() not in by_lower:
                raise CsvError(
                    f"{path}: --columns maps {name} to {wanted!r}, but the header is "
                    f"{', '.join(headers)}"
                )
            chosen[name] = wanted if wanted in headers else by_lower[wanted.lower()]
            continue
        chosen[name] = next(
            (by_lower[alias] for alias in _DEFAULT_HEADERS[name] if alias in by_lower), None
        )
    missing = [name for name in REQUIRED_FIELDS if chosen[name] is None]
    if missing:
        raise CsvError(
            f"{path}: no column for {', '.join(missing)} in header {', '.join(headers)}; "
            "map them with --columns, e.g. --columns date=Date,volume=Vol"
        )
    return ColumnMapping(**chosen)  # type: ignore[arg-type]


def parse_bar_time(
    text: str, interval: str, tz: tzinfo = EXCHANGE_TZ, time_format: str | None = None
) -> datetime:
    """A CSV date/time cell -> the bar's start in UTC (00:00 UTC of the date for daily bars).

    Times without a zone are in `tz` (exchange time for the bundled files).
    """
    text = text.strip()
    if time_format:
        moment = datetime.strptime(text, time_format)
    elif _DATE_ONLY.match(text):
        moment = datetime.fromisoformat(text)
        if interval != Interval.D1:
            raise ValueError(f"{text!r} has no time of day, but the interval is {interval}")
    elif dashed := _DASHED_TIME.match(text):
        day, hour, minute, second = dashed.groups()
        moment = datetime.fromisoformat(f"{day} {hour}:{minute}:{second or '00'}")
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if interval == Interval.D1:
        # A daily bar belongs to its exchange-local trade date, whatever clock wrote it.
        local = moment if moment.tzinfo is None else moment.astimezone(tz)
        return daily_bar_ts(local.date())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_price(text: str) -> float | None:
    """A price cell; empty means unknown (None). Non-finite or non-numeric raises."""
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_volume(text: str) -> int:
    """`148158800.0` -> 148158800; a fractional or missing volume raises."""
    text = text.strip()
    if not text:
        raise ValueError("volume is empty")
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"volume {text!r} is not a whole number of shares")
    return int(value)


@dataclass
class CsvBars:
    """The bars one CSV file gave, after range filtering, and what was seen on the way."""

    path: Path
    interval: str
    bars: list[HistoricalBar] = field(default_factory=list)
    rows_read: int = 0
    first_date: date | None = None
    last_date: date | None = None
    gaps: dict[str, list[date]] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        return sorted({bar.symbol for bar in self.bars})


def read_csv_bars(
    path: Path,
    *,
    interval: str,
    symbol: str | None = None,
    columns: dict[str, str] | None = None,
    tz: tzinfo = EXCHANGE_TZ,
    time_format: str | None = None,
    days: DateRange | None = None,
    symbols: Iterable[str] | None = None,
    ingested_at: datetime,
) -> CsvBars:
    """Parse and validate every row of a CSV, then keep the bars inside `days`.

    The symbol comes from `symbol`, else from a symbol column. Every row is
    checked even outside the range, so a bad file fails whatever range is asked.
    """
    wanted = {s.upper() for s in symbols} if symbols else None
    result = CsvBars(path=path, interval=interval)
    seen: dict[tuple[str, datetime], int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise CsvError(f"{path}: cannot open ({error.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CsvError(f"{path}: the file is empty (no header line)")
        mapping = resolve_columns(path, reader.fieldnames, columns or {})
        if symbol is None and mapping.symbol is None:
            raise CsvError(f"{path}: no symbol column; name the symbol with --symbol")
        for row in reader:
            line = reader.line_num
            result.rows_read += 1
            bar = _row_to_bar(
                path, line, row, mapping, interval, symbol, tz, time_format, ingested_at
            )
            key = (bar.symbol, bar.ts)
            if key in seen:
                raise CsvError(
                    f"{path}:{line}: duplicate bar {bar.symbol} {bar.ts.isoformat()} "
                    f"(first on line {seen[key]})"
                )
            seen[key] = line
            trade_date = trade_date_of(bar.ts)
            result.first_date = min(result.first_date or trade_date, trade_date)
            result.last_date = max(result.last_date or trade_date, trade_date)
            if (days is None or trade_date in days) and (wanted is None or bar.symbol in wanted):
                result.bars.append(bar)
    if result.rows_read == 0:
        raise CsvError(f"{path}: the file has a header but no rows")
    result.bars.sort(key=lambda bar: (bar.symbol, bar.ts))
    return result


def _row_to_bar(
    path: Path,
    line: int,
    row: dict[str, str | None],
    mapping: ColumnMapping,
    interval: str,
    symbol: str | None,
    tz: tzinfo,
    time_format: str | None,
    ingested_at: datetime,
) -> HistoricalBar:
    def cell(name: str) -> str:
        header = getattr(mapping, name)
        value = row.get(header)
        if value is None:
            raise CsvError(f"{path}:{line}: column {header!r} ({name}) is missing from this row")
        return value

    def parsed(name: str, parse, *args):
        try:
            return parse(cell(name), *args)
        except CsvError:
            raise
        except ValueError as error:
            header = getattr(mapping, name)
            raise CsvError(f"{path}:{line}: column {header!r} ({name}): {error}") from None

    values = {
        "ts": parsed("date", parse_bar_time, interval, tz, time_format),
        "open": parsed("open", parse_price),
        "high": parsed("high", parse_price),
        "low": parsed("low", parse_price),
        "close": parsed("close", parse_price),
        "volume": parsed("volume", parse_volume),
        "adj_close": parsed("adj_close", parse_price) if mapping.adj_close else None,
    }
    for name in ("open", "high", "low", "close"):
        if values[name] is None:
            header = getattr(mapping, name)
            raise CsvError(f"{path}:{line}: column {header!r} ({name}) is empty")
    row_symbol = symbol or (cell("symbol").strip().upper() if mapping.symbol else "")
    try:
        return HistoricalBar(
            symbol=row_symbol,
            interval=interval,
            source=HistoricalSource.CSV,
            ingested_at=ingested_at,
            **values,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or 'row'}: "
            f"{problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        )
        raise CsvError(f"{path}:{line}: {problems}") from None


def find_gaps(bars: Iterable[HistoricalBar]) -> dict[str, list[date]]:
    """Per symbol, the exchange's trading days inside its own first..last bar it has no bar for."""
    by_symbol: dict[str, set[date]] = {}
    for bar in bars:
        by_symbol.setdefault(bar.symbol, set()).add(trade_date_of(bar.ts))
    gaps = {}
    for sym, own in sorted(by_symbol.items()):
        expected = trading_days(min(own), max(own) + timedelta(days=1))
        missing = [day for day in expected if day not in own]
        if missing:
            gaps[sym] = missing
    return gaps


def bundled_files_for(symbols: Sequence[str] | None, interval: str) -> list[BundledFile]:
    """The bundled files serving `symbols` at `interval`; unknown symbols raise naming them."""
    offered = [bundled for bundled in BUNDLED_FILES if bundled.interval == interval]
    if not offered:
        intervals = sorted({bundled.interval for bundled in BUNDLED_FILES})
        raise CsvError(
            f"no bundled CSV has {interval} bars (bundled intervals: {', '.join(intervals)}); "
            "pass your own file with --file"
        )
    if not symbols:
        return offered
    by_symbol = {bundled.symbol: bundled for bundled in offered}
    missing = [sym for sym in symbols if sym.upper() not in by_symbol]
    if missing:
        available = ", ".join(sorted(by_symbol))
        raise CsvError(
            f"no bundled {interval} CSV for {', '.join(missing)}; bundled {interval} symbols: "
            f"{available} (or pass --file PATH --symbol X)"
        )
    return [by_symbol[sym.upper()] for sym in dict.fromkeys(symbols)]


def load_bundled(
    symbols: Sequence[str] | None,
    interval: str,
    days: DateRange | None,
    ingested_at: datetime,
) -> list[CsvBars]:
    """Bars of the bundled files for `symbols`; a symbol with no bar in `days` raises."""
    results = []
    for bundled in bundled_files_for(symbols, interval):
        result = read_csv_bars(
            bundled.path,
            interval=interval,
            symbol=bundled.symbol,
            days=days,
            ingested_at=ingested_at,
        )
        if not result.bars:
            raise CsvNoBars(
                f"{bundled.path} has {bundled.symbol} {interval} bars from {result.first_date} "
                f"to {result.last_date}, none in {days}; pick dates inside that span"
            )
        if interval == Interval.D1:
            result.gaps = find_gaps(result.bars)
        results.append(result)
    return results
