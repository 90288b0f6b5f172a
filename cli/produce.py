"""`stocklake produce historical|realtime`: send bars or simulated ticks to Kafka."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.command_run import CommandRun, command_run
from cli.figures import NOTHING, rate_text, seconds_text
from ingestion.csv_source import CsvError, parse_column_mapping
from ingestion.errors import ProduceError
from ingestion.kafka_sink import Compression
from ingestion.market_hours import DateRangeError
from ingestion.producer import (
    IngestLedger,
    ProduceSummary,
    produce_historical_once,
    produce_realtime,
)
from ingestion.realtime_plan import plan_realtime
from ingestion.yahoo import DEFAULT_SYMBOLS, YahooError
from loaders.governance import ingestions_of, record_ingestion
from stocklake.schemas import (
    SYMBOL_RULE,
    Clock,
    HistoricalSource,
    Interval,
    RecordKind,
    is_symbol,
)
from stocklake.settings import Settings, get_settings
from streaming.options import default_group_id

app = typer.Typer(
    help="Send historical bars or simulated real-time ticks to Kafka (key = symbol).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

_DATE_FORMATS = ["%Y-%m-%d"]


# The clocks a person runs by hand; `interval` is the scheduled runs' (the realtime DAG's).
ClockChoice = StrEnum("ClockChoice", [(c.name, c.value) for c in (Clock.ACCELERATED, Clock.LIVE)])


SymbolsOption = Annotated[
    str | None,
    typer.Option(help="Comma-separated symbols, e.g. AAPL,MSFT. Default depends on the source."),
]
SeedOption = Annotated[int, typer.Option(help="Random seed (synthetic bars, simulator).")]
DriftOption = Annotated[
    float | None, typer.Option(help="GBM annual drift, e.g. 0.08 (synthetic, simulator).")
]
VolatilityOption = Annotated[
    float | None, typer.Option(help="GBM annual volatility, e.g. 0.3 (synthetic, simulator).")
]
TopicOption = Annotated[
    str | None, typer.Option(help="Topic to send to (default: the configured topic).")
]
CompressionOption = Annotated[Compression, typer.Option(help="Kafka batch compression.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


def _symbols(text: str | None) -> list[str] | None:
    """--symbols as a list; a bad symbol is one red line and exit status 2 (a usage error)."""
    if not text:
        return None
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    bad = [symbol for symbol in symbols if not is_symbol(symbol)]
    if bad:
        listed = escape(", ".join(repr(symbol) for symbol in bad))
        err_console.print(
            f"[red]error:[/red] --symbols: {listed} is not a symbol; a symbol is {SYMBOL_RULE}",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    return symbols


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def ingest_ledger(settings: Settings) -> IngestLedger:
    """The warehouse's ingestion_metadata, as the historical producer's guard reads it."""
    return IngestLedger(
        earlier=functools.partial(ingestions_of, settings),
        record=functools.partial(record_ingestion, settings),
        landing_group=default_group_id(RecordKind.HISTORICAL),
    )


@contextmanager
def _errors_exit(run: CommandRun) -> Iterator[None]:
    """Known failures become one red line and exit status 1 (the run failed with it), not a
    traceback."""
    try:
        yield
    except (ProduceError, YahooError, CsvError, DateRangeError) as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise run.exit(1, error) from None


class _ProgressBar:
    """A rich progress bar on stderr that appears only once the total is known.

    Collection errors (bad CSV, unknown symbol) then print without an empty bar.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Progress | None = None
        self.task = None

    def start(self, total: int) -> None:
        if not self.enabled or self.bar is not None:
            return
        self.bar = Progress(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = self.bar.add_task("send", total=total)
        self.bar.start()

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, count)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def _progress(enabled: bool) -> Iterator[_ProgressBar]:
    bar = _ProgressBar(enabled)
    try:
        yield bar
    finally:
        bar.stop()


def _print_summary(summary: ProduceSummary, as_json: bool, run: CommandRun | None = None) -> None:
    run_id = {"pipeline_run_id": run.run_id} if run else {}
    if as_json:
        console.print_json(json.dumps({**summary.as_dict(), **run_id}))
        return
    table = Table(title=f"produced to {summary.topic} ({summary.source})", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records acknowledged", f"{summary.records:,}")
    table.add_row("records failed", f"{summary.failed:,}")
    table.add_row("bytes (values)", f"{summary.bytes:,}")
    table.add_row("seconds", seconds_text(summary.seconds))
    rate = rate_text(summary.records, summary.seconds)
    if rate != NOTHING:
        rate += f", {summary.megabytes_per_second:.2f} MB/s"
    table.add_row("rate", rate)
    if summary.first_event:
        table.add_row(
            "event time",
            f"{summary.first_event:%Y-%m-%d %H:%M} .. {summary.last_event:%Y-%m-%d %H:%M} UTC",
        )
    table.add_row(
        "per symbol", ", ".join(f"{sym} {n:,}" for sym, n in sorted(summary.per_symbol.items()))
    )
    table.add_row(
        "per partition", ", ".join(f"{p}: {n:,}" for p, n in sorted(summary.partitions.items()))
    )
    for sym, days in summary.gaps.items():
        shown = ", ".join(d.isoformat() for d in days[:5]) + (" ..." if len(days) > 5 else "")
        table.add_row(f"gap {sym}", f"{len(days)} missing trading day(s): {shown}")
    for note in summary.notes:
        table.add_row("note", note)
    console.print(table)
    if run:
        console.print(run.line(), markup=False, highlight=False, soft_wrap=True)


# Over 60 lines only by its option declarations (typer reads the options from the
# signature); the body is one call.
@app.command("historical")
def historical(
    source: Annotated[
        HistoricalSource, typer.Option(help="Where the bars come from.")
    ] = HistoricalSource.CSV,
    symbols: SymbolsOption = None,
    start: Annotated[
        datetime | None,
        typer.Option(formats=_DATE_FORMATS, help="First trade date, inclusive (YYYY-MM-DD)."),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            formats=_DATE_FORMATS,
            help="End date, EXCLUSIVE: the day after the last trade date sent (YYYY-MM-DD).",
        ),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(help="Instead of --start/--end: 5d, 2wk, 3mo, 1y, ytd (ending today)."),
    ] = None,
    interval: Annotated[Interval, typer.Option(help="Bar size.")] = Interval.D1,
    seed: SeedOption = 0,
    file: Annotated[
        str | None, typer.Option(help="csv: your own CSV file instead of the bundled ones.")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="csv --file: the symbol, if the file has no symbol column.")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            help="csv --file: field=Header pairs, e.g. date=Date,open=Open,volume=Vol "
            "(fields: date open high low close volume adj_close symbol)."
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option(help="csv --file: time zone of times written without one.")
    ] = "America/New_York",
    time_format: Annotated[
        str | None,
        typer.Option(help="csv --file: strptime format of the date column, if unusual."),
    ] = None,
    drift: DriftOption = None,
    volatility: VolatilityOption = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Skip symbols with no bar in the range (a holiday) instead of failing; "
            "unknown symbols and bad files still fail.",
        ),
    ] = False,
    topic: TopicOption = None,
    compression: CompressionOption = Compression.NONE,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Send a dataset even if the same data (same fingerprint) was sent before; "
            "the sending is recorded as forced.",
        ),
    ] = False,
    if_new: Annotated[
        bool,
        typer.Option(
            "--if-new",
            help="Send the dataset only if it was not sent before; otherwise say which run "
            "sent it and succeed without sending (an idempotent re-run).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send historical OHLCV bars: yfinance (online), csv (bundled real data) or synthetic GBM.

    Date ranges are half-open: --start is inclusive, --end is exclusive. Every
    bar is read and validated before the first one is sent. Defaults: csv sends
    every bundled symbol over its whole file; yfinance and synthetic use
    AAPL,MSFT,GOOGL,AMZN,META,TSLA,NVDA over the last month.

    The same dataset (source, symbols, interval, range and bar values) is sent once: a
    repeat is refused naming the earlier run, unless --force or --if-new
    (`ingestion_metadata`).
    """
    settings = get_settings()
    chosen = _symbols(symbols)
    with command_run("produce historical") as run, _errors_exit(run), _progress(not as_json) as bar:
        summary = produce_historical_once(
            settings,
            ingest_ledger(settings),
            run_id=run.run_id,
            force=force,
            if_new=if_new,
            source=source.value,
            topic=topic,
            compression=compression.value,
            progress=bar.advance,
            on_collected=lambda batch: bar.start(len(batch.bars)),
            symbols=chosen,
            start=_day(start),
            end=_day(end),
            period=period,
            interval=interval.value,
            seed=seed,
            file=file,
            symbol=symbol,
            columns=parse_column_mapping(columns) if columns else None,
            tz=tz,
            time_format=time_format,
            drift=drift,
            volatility=volatility,
            allow_empty=allow_empty,
        )
        run.count(summary.as_dict())
    _print_summary(summary, as_json, run)


@app.command("realtime")
def realtime(
    symbols: SymbolsOption = None,
    rate: Annotated[
        float, typer.Option(help="Ticks per wall-clock second; 0 = as fast as possible.")
    ] = 100.0,
    duration: Annotated[
        float | None, typer.Option(help="Seconds of wall time to run (at --rate).")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Number of ticks to send.")] = None,
    seed: SeedOption = 0,
    clock: Annotated[
        ClockChoice,
        typer.Option(
            help="accelerated: a 6.5 h session replays in about 60 s of wall time at "
            "--rate 1000 (event time is simulated, UTC); live: event time is now."
        ),
    ] = ClockChoice.ACCELERATED,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=_DATE_FORMATS,
            help="accelerated: simulated session date (default: the most recent weekday).",
        ),
    ] = None,
    drift: DriftOption = None,
    volatility: VolatilityOption = None,
    topic: TopicOption = None,
    compression: CompressionOption = Compression.NONE,
    as_json: JsonOption = False,
) -> None:
    """Send simulated trade ticks: GBM prices per symbol, U-shaped intraday sizes.

    Starting prices are the bundled files' last closes where a symbol has one.
    The same --seed gives the same ticks; only the wall-clock pacing varies.
    Each tick stands for 390/rate simulated seconds on the accelerated clock
    (1/rate on the live one).
    """
    settings = get_settings()
    chosen = _symbols(symbols) or list(DEFAULT_SYMBOLS)
    with command_run("produce realtime") as run, _errors_exit(run):
        plan = plan_realtime(
            chosen,
            rate=rate,
            count=count,
            duration=duration,
            seed=seed,
            clock=clock.value,
            session_date=_day(start),
            drift=drift,
            volatility=volatility,
        )
        with _progress(not as_json) as bar:
            bar.start(plan.count or 0)
            summary = produce_realtime(
                settings, plan, topic=topic, compression=compression.value, progress=bar.advance
            )
        run.count(summary.as_dict())
    _print_summary(summary, as_json, run)
