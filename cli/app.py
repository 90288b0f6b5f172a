"""`stocklake`: one command line for the local stack and every pipeline stage."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from cli import check, clean, dashboard, lake_view, land, load, models, produce, runs, spark, stack
from cli.command_run import RecordedCommands
from stocklake.settings import SettingsError

app = typer.Typer(
    help="stocklake: a market-data lake (Kafka -> S3 -> Spark -> Snowflake/PostgreSQL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack.register(app)
stack.register_airflow(app)
app.add_typer(produce.app, name="produce")
app.add_typer(land.app, name="land")
app.add_typer(spark.app, name="spark")
load.register(app)
lake_view.register(app)
clean.register(app)
dashboard.register(app)
models.register(app)
runs.register(app)
check.register(
    RecordedCommands(
        app,
        {"check": "a check failed at severity fail", "drift": "drift alerts at severity fail"},
    )
)

err_console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except SettingsError as error:
        err_console.print(f"[red]error:[/red] {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
