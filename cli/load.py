"""`stocklake load daily|realtime` and `stocklake sql`: the warehouse from the command line."""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import date, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.command_run import command_run
from cli.figures import seconds_text
from cli.query_output import (
    OutputFormat,
    render_csv,
    render_json,
    render_table,
    render_vertical,
    widest_line,
)
from loaders import (
    LoadError,
    LoadSummary,
    SchemaNotFoundError,
    load_table,
    run_query,
)
from loaders.tables import LOADABLE_TABLES
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
    for dead in summary.dead_loads_failed:
        table.add_row("earlier load marked failed", dead)
    return table


def _no_such_schema(error: SchemaNotFoundError) -> typer.Exit:
    """One line naming the schema; exit 2 like any other bad argument."""
    err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _run_load(
    kind: str,
    day: datetime | None,
    start: datetime | None,
    end: datetime | None,
    full_refresh: bool,
    schema: str | None,
    as_json: bool,
) -> None:
    """Load each table of `kind` in turn (one recorded run); the first failure stops
    (exit 1)."""
    first, end_day = _dates(day, start, end)
    settings = get_settings()
    with command_run(f"load {kind}", schema) as run:
        for table in LOADABLE_TABLES[kind]:
            try:
                summary = load_table(
                    settings,
                    table,
                    start=first,
                    end=end_day,
                    full_refresh=full_refresh,
                    schema=schema,
                    pipeline_run_id=run.run_id,
                )
            except SchemaNotFoundError as error:
                raise _no_such_schema(error) from None
            except LoadError as error:
                run.count(error.summary.as_dict())
                _show(error.summary, as_json)
                err_console.print(f"[red]error:[/red] {error}")
                raise run.exit(1, error) from None
            run.count(summary.as_dict())
            _show(summary, as_json)
            if not summary.partitions and not as_json:
                console.print(
                    f"[yellow]nothing to load into {table.name}:[/yellow] no processed "
                    "partition is new or changed"
                    + (" in the given dates" if first or end_day else "")
                )
    if not as_json:
        console.print(run.line(), markup=False, highlight=False, soft_wrap=True)


def _show(summary: LoadSummary, as_json: bool) -> None:
    """The summary as a table, or as one JSON line (one per table loaded)."""
    if as_json:
        print(json.dumps(_summary_json(summary)))
    else:
        console.print(_summary_table(summary))


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
    "features",
    "processed/features/daily -> daily_features, then processed/features/intraday -> "
    "intraday_features. Without dates: the partitions that are new or changed since their "
    "last successful load. --json prints one line per table.",
)
_load_command(
    "realtime",
    "processed/realtime (15m and 1h windows) -> realtime_window_metrics. Without dates: the "
    "partitions that are new or changed since their last successful load.",
)


def _terminal_width() -> int | None:
    """The terminal's width when known (COLUMNS, or stdout is a terminal); None when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _print_rows(
    columns: list[str], rows: list[tuple], fmt: OutputFormat, max_rows: int, max_width: int | None
) -> None:
    """The rows in the chosen format on stdout; notes for the reader on stderr."""
    shown = rows[:max_rows]
    hidden = len(rows) - len(shown)
    if fmt is OutputFormat.json:
        print(render_json(columns, shown))
    elif fmt is OutputFormat.csv:
        sys.stdout.write(render_csv(columns, shown))
    elif not columns:
        print("OK (the statement returned no rows)")
        return
    else:
        render = render_table if fmt is OutputFormat.table else render_vertical
        lines = render(columns, shown, max_width)
        print("\n".join(lines))
        more = f", {hidden} not shown: raise --max-rows" if hidden else ""
        print(f"({len(rows)} row{'' if len(rows) == 1 else 's'}{more})")
        terminal = _terminal_width()
        if fmt is OutputFormat.table and terminal and widest_line(lines) > terminal:
            err_console.print(
                f"note: the table is {widest_line(lines)} characters wide, the terminal "
                f"{terminal}: try --format vertical, or --max-width N to cut cells",
                markup=False,
                highlight=False,
            )
        return
    if hidden:
        err_console.print(f"{hidden} more row(s) not shown: raise --max-rows", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the warehouse commands to the main app."""
    app.add_typer(load_app, name="load")

    @app.command("sql")
    def sql(
        statement: str = typer.Argument(..., help='SQL to run, e.g. "SELECT * FROM load_audit".'),
        fmt: OutputFormat | None = typer.Option(
            None,
            "--format",
            "-f",
            help="table (aligned, cells never cut unless --max-width), vertical (one "
            "'column | value' line each, like psql's \\x), csv, or json. Default: table.",
        ),
        max_width: int | None = typer.Option(
            None, "--max-width", min=1, help="Cut table and vertical cells to this many characters."
        ),
        max_rows: int = typer.Option(200, "--max-rows", min=1, help="Rows to print at most."),
        as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
        schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
        write: bool = typer.Option(
            False,
            "--write",
            help="Run as the pipeline's role (PostgreSQL), which may change the warehouse "
            "tables. Default: the read-only role, in a read-only transaction.",
        ),
        allow_multiple: bool = typer.Option(
            False,
            "--allow-multiple",
            help="Allow several ';'-separated statements in one call (the last one's rows "
            "are printed). Default: exactly one statement.",
        ),
    ) -> None:
        """Run one statement on the configured warehouse (PostgreSQL or Snowflake).

        On PostgreSQL it runs as the read-only role (SELECT on the warehouse tables)
        unless --write.
        """
        if as_json and fmt not in (None, OutputFormat.json):
            raise typer.BadParameter(
                f"--json and --format {fmt} contradict: give one", param_hint="--format"
            )
        settings = get_settings()
        try:
            columns, rows = run_query(
                settings, statement, schema=schema, write=write, allow_multiple=allow_multiple
            )
        except SchemaNotFoundError as error:
            raise _no_such_schema(error) from None
        except Exception as error:  # the database's own message is the useful part
            hint = ""
            if "multiple commands" in str(error):
                hint = " (one statement per call: --allow-multiple runs several)"
            err_console.print(f"[red]error:[/red] {type(error).__name__}: {error}{hint}")
            raise typer.Exit(1) from None
        chosen = OutputFormat.json if as_json else (fmt or OutputFormat.table)
        _print_rows(columns, rows, chosen, max_rows, max_width)
