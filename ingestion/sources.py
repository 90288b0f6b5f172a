"""The historical sources behind one call: options in, validated bars out (nothing is sent).

`collect_historical` checks what every source shares (the interval, the symbols),
then hands a `HistoricalRequest` to its source's collector in COLLECTORS. A new
source is a member of `stocklake.schemas.HistoricalSource`, a module that makes
bars, and one collector here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingestion import csv_source, synthetic, yahoo
from ingestion.errors import ProduceError
from ingestion.gbm import gbm_overrides
from ingestion.market_hours import DateRange, resolve_range
from stocklake.schemas import HistoricalBar, HistoricalSource, Interval


@dataclass
class HistoricalBatch:
    """Validated bars ready to send, with what the source reported on the way."""

    bars: list[HistoricalBar]
    gaps: dict[str, list[date]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HistoricalRequest:
    """The options of one collection, checked and normalised (see `collect_historical`)."""

    symbols: list[str] | None
    start: date | None
    end: date | None
    period: str | None
    interval: str
    seed: int
    file: str | None
    symbol: str | None
    columns: dict[str, str] | None
    tz: str
    time_format: str | None
    drift: float | None
    volatility: float | None
    allow_empty: bool
    today: date
    ingested_at: datetime
    yahoo_history: yahoo.HistoryFetcher | None
    sleep: Callable[[float], None]

    def days(self) -> DateRange | None:
        """The range asked for by --start/--end or --period (None: no bound given)."""
        return resolve_range(self.start, self.end, self.period, self.today)


def collect_historical(
    source: HistoricalSource | str,
    *,
    symbols: Sequence[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    period: str | None = None,
    interval: str = Interval.D1,
    seed: int = 0,
    file: str | None = None,
    symbol: str | None = None,
    columns: dict[str, str] | None = None,
    tz: str = "America/New_York",
    time_format: str | None = None,
    drift: float | None = None,
    volatility: float | None = None,
    allow_empty: bool = False,
    today: date | None = None,
    yahoo_history: yahoo.HistoryFetcher | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HistoricalBatch:
    """Read and validate every bar first, so nothing is sent unless all of it is good.

    A symbol with no bar in the range is an error, unless `allow_empty`
    (scheduled runs: a market holiday): then it is skipped with a note. An
    unknown symbol or a bad file is an error either way.
    """
    if interval not in tuple(Interval):
        raise ProduceError(f"--interval {interval!r} is not one of {', '.join(Interval)}")
    try:
        collect = COLLECTORS[HistoricalSource(source)]
    except ValueError:
        raise ProduceError(
            f"--source {source!r} is not one of {', '.join(HistoricalSource)}"
        ) from None
    request = HistoricalRequest(
        symbols=[s.strip().upper() for s in symbols or [] if s.strip()] or None,
        start=start,
        end=end,
        period=period,
        interval=interval,
        seed=seed,
        file=file,
        symbol=symbol,
        columns=columns,
        tz=tz,
        time_format=time_format,
        drift=drift,
        volatility=volatility,
        allow_empty=allow_empty,
        today=today or datetime.now(UTC).date(),
        ingested_at=datetime.now(UTC),
        yahoo_history=yahoo_history,
        sleep=sleep,
    )
    return collect(request)


@contextmanager
def _skipped_if_allowed(
    request: HistoricalRequest, no_bars: type[Exception], notes: list[str]
) -> Iterator[None]:
    """A symbol without bars in the range is noted and skipped if `allow_empty`, else raised."""
    try:
        yield
    except no_bars as error:
        if not request.allow_empty:
            raise
        notes.append(f"skipped {error}")


def _from_yahoo(request: HistoricalRequest) -> HistoricalBatch:
    # Yahoo understands periods (5d, 1mo, max) itself: hand it the user's words.
    if request.period is not None and (request.start is not None or request.end is not None):
        raise ProduceError("give either --period or --start/--end, not both")
    days = request.days() if request.period is None else None
    kwargs = {"history": request.yahoo_history} if request.yahoo_history else {}
    bars: list[HistoricalBar] = []
    notes: list[str] = []
    for sym in request.symbols or list(yahoo.DEFAULT_SYMBOLS):
        with _skipped_if_allowed(request, yahoo.YahooNoBars, notes):
            bars.extend(
                yahoo.fetch_history(
                    sym,
                    request.interval,
                    days=days,
                    period=request.period,
                    ingested_at=request.ingested_at,
                    sleep=request.sleep,
                    **kwargs,
                )
            )
    return HistoricalBatch(bars, notes=notes)


def _from_csv(request: HistoricalRequest) -> HistoricalBatch:
    days = request.days()
    notes: list[str] = []
    if request.file is None:
        results = _bundled_csv(request, days, notes)
    else:
        results = [_user_csv(request, request.file, days)]
    gaps: dict[str, list[date]] = {}
    for result in results:
        gaps.update(result.gaps)
        notes.append(f"{result.path.name}: {len(result.bars)} of {result.rows_read} rows in range")
    return HistoricalBatch(
        [bar for result in results for bar in result.bars], gaps=gaps, notes=notes
    )


def _bundled_csv(
    request: HistoricalRequest, days: DateRange | None, notes: list[str]
) -> list[csv_source.CsvBars]:
    """The bundled files of the requested symbols (all of them by default), one by one."""
    if request.symbol is not None or request.columns:
        raise ProduceError("--symbol and --columns apply to --file; add --file PATH")
    results: list[csv_source.CsvBars] = []
    for one in csv_source.bundled_files_for(request.symbols, request.interval):
        with _skipped_if_allowed(request, csv_source.CsvNoBars, notes):
            results += csv_source.load_bundled(
                [one.symbol], request.interval, days, request.ingested_at
            )
    return results


def _user_csv(request: HistoricalRequest, file: str, days: DateRange | None) -> csv_source.CsvBars:
    """The user's own file, read with their column mapping, time zone and time format."""
    try:
        zone = ZoneInfo(request.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProduceError(f"--tz {request.tz!r} is not a known time zone") from None
    result = csv_source.read_csv_bars(
        Path(file),
        interval=request.interval,
        symbol=request.symbol.upper() if request.symbol else None,
        columns=request.columns,
        tz=zone,
        time_format=request.time_format,
        days=days,
        symbols=request.symbols,
        ingested_at=request.ingested_at,
    )
    if not result.bars and not request.allow_empty:
        raise csv_source.CsvNoBars(
            f"{file}: {result.rows_read} rows from {result.first_date} to "
            f"{result.last_date}, none for {', '.join(request.symbols or ['any symbol'])} "
            f"in {days}"
        )
    if request.interval == Interval.D1:
        result.gaps = csv_source.find_gaps(result.bars)
    return result


def _from_synthetic(request: HistoricalRequest) -> HistoricalBatch:
    days = request.days()
    if days is None:
        days = resolve_range(None, None, "1mo", request.today)
    assert days is not None
    bars = list(
        synthetic.synthetic_bars(
            request.symbols or list(yahoo.DEFAULT_SYMBOLS),
            days,
            request.interval,
            seed=request.seed,
            ingested_at=request.ingested_at,
            **gbm_overrides(request.drift, request.volatility),
        )
    )
    if not bars and not request.allow_empty:
        raise ProduceError(f"{days} holds no weekday: no synthetic bars to produce")
    return HistoricalBatch(bars, notes=[f"seed {request.seed}, weekdays in {days}"])


# One collector per source: the dispatch of `collect_historical`.
COLLECTORS: dict[HistoricalSource, Callable[[HistoricalRequest], HistoricalBatch]] = {
    HistoricalSource.YFINANCE: _from_yahoo,
    HistoricalSource.CSV: _from_csv,
    HistoricalSource.SYNTHETIC: _from_synthetic,
}
