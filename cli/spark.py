"""`stocklake spark`: the Spark jobs (daily metrics batch, real-time windows stream)."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum

import typer
from rich.console import Console

from stocklake.settings import get_settings

app = typer.Typer(help="Spark jobs: daily metrics and real-time windows.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class OnEmptyChoice(StrEnum):
    fail = "fail"
    skip = "skip"


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


def _print(summary: dict, as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    console.print(f"[bold]{title}[/bold]")
    for key, value in summary.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                console.print(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            console.print(f"  {key}: {value}")


@app.command()
def daily(
    day: datetime | None = typer.Option(None, "--date", formats=["%Y-%m-%d"], help="One date."),
    start: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="First date."),
    end: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="Last date (incl.)."),
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Rebuild processed/historical from every raw date."
    ),
    on_empty: OnEmptyChoice = typer.Option(
        OnEmptyChoice.fail, help="A requested date without bars: fail (exit 3) or skip (warn)."
    ),
    lookback_days: int = typer.Option(
        10, min=0, help="Calendar days searched back for the previous trading day's close."
    ),
    conf: list[str] = typer.Option([], "--conf", help="Extra Spark option key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Daily metrics per (symbol, date): raw/historical -> processed/historical/date=.../."""
    from spark_jobs.daily import DailyJobError, NoDataError, run_daily
    from spark_jobs.session import build_spark

    if day and (start or end):
        raise typer.BadParameter("give --date or --start/--end, not both")
    first, last = (_day(day), _day(day)) if day else (_day(start), _day(end))
    if not full_refresh and (first is None or last is None):
        raise typer.BadParameter("give --date, or --start and --end, or --full-refresh")
    settings = get_settings()
    spark = build_spark(settings, "stocklake-daily-metrics", _parse_conf(conf))
    try:
        summary = run_daily(
            settings,
            first,
            last,
            full_refresh=full_refresh,
            on_empty=on_empty.value,
            lookback_days=lookback_days,
            spark=spark,
        )
    except NoDataError as error:
        err_console.print(f"[red]no data:[/red] {error}")
        raise typer.Exit(3) from None
    except (DailyJobError, ValueError) as error:
        err_console.print(f"[red]daily job failed:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        spark.stop()
    if summary.dates_skipped:
        err_console.print(
            f"[yellow]warning:[/yellow] no bars for {', '.join(summary.dates_skipped)}: skipped"
        )
    _print(summary.as_dict(), as_json, "daily metrics")


@app.command()
def stream(
    available_now: bool = typer.Option(
        False, "--available-now", help="Process what has landed, then stop (for Airflow)."
    ),
    processing_time: str | None = typer.Option(
        None, help="Run live, one micro-batch per interval (e.g. 30s) until SIGTERM."
    ),
    watermark: str = typer.Option("10m", help="How late a tick may be (event time)."),
    slide: str = typer.Option("5m", help="Slide of the 15m and 1h windows."),
    window: list[str] = typer.Option(["15m", "1h"], help="Window size(s) to compute."),
    max_files_per_trigger: int = typer.Option(200, min=1, help="Raw files per micro-batch."),
    conf: list[str] = typer.Option([], "--conf", help="Extra Spark option key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Sliding-window metrics: raw/realtime -> processed/realtime/window=.../date=.../."""
    from spark_jobs.session import build_spark
    from spark_jobs.stream import StreamJobError, run_stream

    if available_now == (processing_time is not None):
        raise typer.BadParameter("give exactly one of --available-now or --processing-time")
    settings = get_settings()
    spark = build_spark(settings, "stocklake-realtime-windows", _parse_conf(conf))
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
        raise typer.Exit(1) from None
    finally:
        spark.stop()
    _print(summary.as_dict(), as_json, "real-time windows")
