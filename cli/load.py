"""`stocklake load daily|realtime` and `stocklake sql`: the warehouse from the command line."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.figures import seconds_text
from loaders import LoadError, LoadSummary, load_daily, load_realtime, local_run_id, run_query
from stocklake.settings import get_settings

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

load_app = typer.Typer(
    help="Load processed partitions from the lake into the warehouse (MERGE on the table key).",
    no_args_is_help=True,
)

SCHEMA_HELP = "PostgreSQL schema (default WAREHOUSE_SCHEMA) or Snowflake schema (SNOWFLAKE_SCHEMA)."


def _dates(
    day: datetime | None, start: datetime | None, end: datetime | None
) -> tuple[date | None, date | None]:
    """[start, end) to load: half-open like Airflow's data intervals, --date D is [D, D+1)."""
    if day is not None and (start is not None or end is not None):
        raise typer.BadParameter("give --date, or --start/--end, not both")
    if day is not None:
        return day.date(), day.date() + timedelta(days=1)
    first = start.date() if start else None
    end_day = end.date() if end else None
    if first and end_day and end_day <= first:
        raise typer.BadParameter(
            f"--end {end_day} must be after --start {first} (--end is exclusive)",
            param_hint="--end",
        )
    return first, end_day


def _summary_table(summary: LoadSummary) -> Table:
    table = Table(title=f"load {summary.table} ({summary.mode}): {summary.status}")
    table.add_column("what")
    table.add_column("value", justify="right")
    partitions = summary.partitions
    shown = (
        ", ".join(partitions)
        if len(partitions) <= 4
        else (f"{partitions[0]} .. {partitions[-1]} ({len(partitions)})")
    )
    rows = [
        ("run id", summary.run_id),
        ("pipeline run", summary.pipeline_run_id),
        ("partitions", shown or "none"),
        ("files", summary.files),
        ("rows read", summary.rows_read),
        ("rejected (null key)", summary.rows_rejected),
        ("duplicates (older)", summary.rows_duplicate),
        ("staged", summary.rows_staged),
        ("inserted", summary.rows_inserted),
        ("updated", summary.rows_updated),
        ("unchanged", summary.rows_unchanged if summary.status == "succeeded" else "-"),
        ("seconds", seconds_text(summary.seconds)),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _run_load(
    kind: str,
    day: datetime | None,
    start: datetime | None,
    end: datetime | None,
    full_refresh: bool,
    schema: str | None,
    as_json: bool,
) -> None:
    first, end_day = _dates(day, start, end)
    loader = load_daily if kind == "daily" else load_realtime
    try:
        summary = loader(
            get_settings(),
            first,
            end_day,
            full_refresh,
            schema,
            pipeline_run_id=local_run_id("cli"),
        )
    except LoadError as error:
        if as_json:
            print(json.dumps(_summary_json(error.summary)))
        else:
            console.print(_summary_table(error.summary))
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(_summary_json(summary)))
        return
    console.print(_summary_table(summary))
    if not summary.partitions:
        console.print(
            "[yellow]nothing to load:[/yellow] no processed partition is new or changed"
            + (" in the given dates" if first or end_day else "")
        )


def _summary_json(summary: LoadSummary) -> dict[str, Any]:
    return summary.as_dict()


def _load_command(kind: str, help_text: str) -> None:
    @load_app.command(kind, help=help_text)
    def command(
        day: datetime | None = typer.Option(
            None, "--date", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Load one date."
        ),
        start: datetime | None = typer.Option(
            None,
            "--start",
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="First date, inclusive.",
        ),
        end: datetime | None = typer.Option(
            None,
            "--end",
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="End date, EXCLUSIVE: the day after the last date loaded (like Airflow's "
            "data intervals).",
        ),
        full_refresh: bool = typer.Option(
            False, "--full-refresh", help="Reload every partition, whatever was loaded before."
        ),
        schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        _run_load(kind, day, start, end, full_refresh, schema, as_json)


_load_command(
    "daily",
    "processed/historical -> daily_metrics. Without dates: the partitions that are new or "
    "changed since their last successful load.",
)
_load_command(
    "realtime",
    "processed/realtime (15m and 1h windows) -> realtime_window_metrics. Without dates: the "
    "partitions that are new or changed since their last successful load.",
)


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def register(app: typer.Typer) -> None:
    """Add the warehouse commands to the main app."""
    app.add_typer(load_app, name="load")

    @app.command("sql")
    def sql(
        statement: str = typer.Argument(..., help='SQL to run, e.g. "SELECT * FROM load_audit".'),
        max_rows: int = typer.Option(200, "--max-rows", min=1, help="Rows to print at most."),
        as_json: bool = typer.Option(False, "--json", help="Print rows as JSON objects."),
        schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
    ) -> None:
        """Run one statement on the configured warehouse (PostgreSQL or Snowflake)."""
        settings = get_settings()
        try:
            columns, rows = run_query(settings, statement, schema=schema)
        except Exception as error:  # the database's own message is the useful part
            err_console.print(f"[red]error:[/red] {type(error).__name__}: {error}")
            raise typer.Exit(1) from None
        if as_json:
            records = [
                {name: _json_value(value) for name, value in zip(columns, row, strict=True)}
                for row in rows[:max_rows]
            ]
            print(json.dumps(records))
            return
        if not columns:
            console.print("OK (the statement returned no rows)")
            return
        table = Table(title=f"{settings.warehouse_kind}: {len(rows)} row(s)")
        for name in columns:
            table.add_column(name)
        for row in rows[:max_rows]:
            table.add_row(*("NULL" if value is None else str(value) for value in row))
        console.print(table)
        if len(rows) > max_rows:
            console.print(f"[yellow]{len(rows) - max_rows} more row(s) not shown[/yellow]")
