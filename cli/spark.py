"""`stocklake spark`: the Spark jobs (daily metrics and features batches, real-time
windows stream)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.command_run import CommandRun, command_run
from cli.figures import value_text
from spark_jobs.daily import DEFAULT_LOOKBACK_DAYS, OnEmpty
from spark_jobs.stream import DEFAULT_MAX_FILES_PER_TRIGGER, DEFAULT_SLIDE, DEFAULT_WATERMARK
from stocklake.schemas import WINDOW_SIZES
from stocklake.settings import get_settings

app = typer.Typer(
    help="Spark jobs: daily metrics, rolling features and real-time windows.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

ONE_DAY = timedelta(days=1)
# Half-open [start, end) like Airflow's data intervals, the same for every command.
END_HELP = "End date, EXCLUSIVE: the day after the last date computed"


DateOption = Annotated[
    datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="One date.")
]
StartOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="First date, inclusive (YYYY-MM-DD)."),
]
EndOption = Annotated[
    datetime | None, typer.Option(formats=["%Y-%m-%d"], help=END_HELP + " (YYYY-MM-DD).")
]
ConfOption = Annotated[list[str], typer.Option("--conf", help="Extra Spark option key=value.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


def _parse_conf(pairs: list[str]) -> dict[str, str]:
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--conf")
        conf[key.strip()] = value.strip()
    return conf


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """A job's summary for people: one `what: value` line each, seconds rounded; for a
    stream, its late ticks (dropped behind the watermark), then one line per window query."""
    lines = [
        f"{key.replace('_', ' ')}: {value_text(key, value)}"
        for key, value in summary.items()
        if key != "queries"
    ]
    queries = summary.get("queries")
    if queries is not None:
        if "late_rows_dropped" not in summary:
            late = max((query.get("late_rows_dropped", 0) for query in queries), default=0)
            lines.append(f"late rows dropped: {late:,}")
        for query in queries:
            figures = ", ".join(
                f"{key.replace('_', ' ')} {value_text(key, value)}"
                for key, value in query.items()
                if key != "window_size"
            )
            lines.append(f"{query.get('window_size')} windows: {figures}")
    return lines


def _print(summary: dict[str, Any], as_json: bool, title: str, run: CommandRun) -> None:
    """The summary (with the run's id, for `stocklake runs show`)."""
    if as_json:
        console.print_json(json.dumps({**summary, "pipeline_run_id": run.run_id}, default=str))
        return
    console.print(f"[bold]{title}[/bold]")
    for line in summary_lines(summary):
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(f"  {run.line()}", markup=False, highlight=False, soft_wrap=True)


def _daily_range(
    day: datetime | None, start: datetime | None, end: datetime | None, full_refresh: bool
) -> tuple[date | None, date | None]:
    """[first, end) to compute: --date D is [D, D+1); --end is exclusive."""
    if day and (start or end):
        raise typer.BadParameter("give --date or --start/--end, not both")
    first, end_day = (_day(day), _day(day) + ONE_DAY) if day else (_day(start), _day(end))
    if not full_refresh and (first is None or end_day is None):
        raise typer.BadParameter("give --date, or --start and --end, or --full-refresh")
    if first is not None and end_day is not None and end_day <= first:
        raise typer.BadParameter(
            f"--end {end_day} must be after --start {first} (--end is exclusive)",
            param_hint="--end",
        )
    return first, end_day


@app.command()
def daily(
    day: DateOption = None,
    start: StartOption = None,
    end: EndOption = None,
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Rebuild processed/historical from every raw date."
    ),
    on_empty: OnEmpty = typer.Option(
        OnEmpty.FAIL,
        help="A trading date without bars: fail (exit 3) or skip (warn). Weekends and "
        "exchange holidays are always skipped (listed in the summary).",
    ),
    lookback_days: int = typer.Option(
        DEFAULT_LOOKBACK_DAYS,
        min=0,
        help="Calendar days searched back for the previous trading day's close.",
    ),
    conf: ConfOption = [],  # noqa: B006 (typer copies the default)
    as_json: JsonOption = False,
) -> None:
    """Daily metrics per (symbol, date): raw/historical -> processed/historical/date=.../.

    Dates are half-open like Airflow's data intervals: --start is inclusive, --end is
    exclusive (--start 2020-12-28 --end 2020-12-31 computes the 28th, 29th and 30th).
    """
    from spark_jobs.daily import DailyJobError, NoDataError, run_daily
    from spark_jobs.session import build_spark

    first, end_day = _daily_range(day, start, end, full_refresh)
    settings = get_settings()
    spark_conf = _parse_conf(conf)
    with command_run("spark daily") as run:
        spark = build_spark(settings, "stocklake-daily-metrics", spark_conf)
        try:
            summary = run_daily(
                settings,
                first,
                end_day,
                full_refresh=full_refresh,
                on_empty=on_empty,
                lookback_days=lookback_days,
                spark=spark,
            )
        except NoDataError as error:
            err_console.print(f"[red]no data:[/red] {error}")
            raise run.exit(3, error) from None
        except (DailyJobError, ValueError) as error:
            err_console.print(f"[red]daily job failed:[/red] {error}")
            raise run.exit(1, error) from None
        finally:
            spark.stop()
        run.count(summary.as_dict())
    if summary.dates_skipped:
        err_console.print(
            f"[yellow]warning:[/yellow] no bars for {', '.join(summary.dates_skipped)}: skipped"
        )
    _print(summary.as_dict(), as_json, "daily metrics", run)


@app.command()
def features(
    day: DateOption = None,
    start: StartOption = None,
    end: EndOption = None,
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Recompute processed/features/ for every date."
    ),
    conf: ConfOption = [],  # noqa: B006 (typer copies the default)
    as_json: JsonOption = False,
) -> None:
    """Rolling features: processed/historical -> processed/features/daily/, and 1-minute
    bars in raw/historical -> processed/features/intraday/ (definitions in the README).

    Run after `stocklake spark daily` for the same dates; --end is exclusive.
    """
    from spark_jobs.features_job import FeaturesJobError, run_features
    from spark_jobs.session import build_spark

    first, end_day = _daily_range(day, start, end, full_refresh)
    settings = get_settings()
    spark_conf = _parse_conf(conf)
    with command_run("spark features") as run:
        spark = build_spark(settings, "stocklake-features", spark_conf)
        try:
            summary = run_features(settings, first, end_day, full_refresh=full_refresh, spark=spark)
        except (FeaturesJobError, ValueError) as error:
            err_console.print(f"[red]features job failed:[/red] {error}")
            raise run.exit(1, error) from None
        finally:
            spark.stop()
        run.count(summary.as_dict())
    _print(summary.as_dict(), as_json, "rolling features", run)


@app.command()
def stream(
    available_now: bool = typer.Option(
        False, "--available-now", help="Process what has landed, then stop (for Airflow)."
    ),
    processing_time: str | None = typer.Option(
        None, help="Run live, one micro-batch per interval (e.g. 30s) until SIGTERM."
    ),
    watermark: str = typer.Option(DEFAULT_WATERMARK, help="How late a tick may be (event time)."),
    slide: str = typer.Option(DEFAULT_SLIDE, help="Slide of the 15m and 1h windows."),
    window: list[str] = typer.Option(list(WINDOW_SIZES), help="Window size(s) to compute."),
    max_files_per_trigger: int = typer.Option(
        DEFAULT_MAX_FILES_PER_TRIGGER, min=1, help="Raw files per micro-batch."
    ),
    conf: ConfOption = [],  # noqa: B006 (typer copies the default)
    as_json: JsonOption = False,
) -> None:
    """Sliding-window metrics: raw/realtime -> processed/realtime/window=.../date=.../."""
    from spark_jobs.session import build_spark
    from spark_jobs.stream import StreamJobError, run_stream

    if available_now == (processing_time is not None):
        raise typer.BadParameter("give exactly one of --available-now or --processing-time")
    settings = get_settings()
    spark_conf = _parse_conf(conf)
    with command_run("spark stream") as run:
        spark = build_spark(settings, "stocklake-realtime-windows", spark_conf)
        try:
            summary = run_stream(
                settings,
                available_now=available_now,
                processing_time=processing_time or "30s",
                watermark=watermark,
                slide=slide,
                window_sizes=tuple(window),
                max_files_per_trigger=max_files_per_trigger,
                spark=spark,
            )
        except (StreamJobError, ValueError) as error:
            err_console.print(f"[red]stream job failed:[/red] {error}")
            raise run.exit(1, error) from None
        finally:
            spark.stop()
        run.count(summary.as_dict())
        _print(summary.as_dict(), as_json, "real-time windows", run)
        problem = summary.late_problem(settings.stream_max_late_ratio)
        if problem and settings.stream_late_action == "fail":
            err_console.print(f"[red]too many late ticks:[/red] {problem} (STREAM_MAX_LATE_RATIO)")
            raise run.exit(4, f"too many late ticks: {problem}")
    if problem:
        err_console.print(f"[yellow]warning:[/yellow] {problem} (STREAM_MAX_LATE_RATIO)")
