"""`stocklake up | down | status`: the embedded local stack."""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.local_stack import LocalStack, ServiceStatus, StackError, statuses_json
from stocklake.settings import Settings, get_settings

# Wide enough for endpoints when printed to a log or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _table(statuses: list[ServiceStatus]) -> Table:
    table = Table(title="stocklake local stack")
    for column in ("service", "kind", "endpoint", "health", "pid", "RSS MB", "details"):
        table.add_column(column)
    for s in statuses:
        health = "[green]healthy[/green]" if s.healthy else "[red]down[/red]"
        owner = str(s.pid) if s.managed else "(not ours)" if s.healthy else "-"
        details = "; ".join(f"{k}: {v}" for k, v in s.extra.items())
        rss = f"{s.rss_mb:.0f}" if s.rss_mb is not None else "-"
        table.add_row(s.name, s.kind, s.endpoint, health, owner, rss, details)
    return table


def report_unlanded(settings: Settings) -> list[str]:
    """Lines saying how many records each pipeline topic holds that no landing committed."""
    from streaming.backlog import unlanded

    try:
        waiting = unlanded(settings, timeout=3.0)
    except Exception as error:
        reason = str(error).split(". ")[0]  # without the hints meant for a landing run
        return [f"kafka: could not check for records not landed yet ({reason})"]
    # Tansu with memory storage loses its log when it stops; S3 storage and Kafka keep it.
    kept = settings.kafka_storage == "s3" or settings.kafka_home is not None
    lines = []
    for topic, count in waiting.items():
        if count:
            kind = "historical" if topic == settings.topic_historical else "realtime"
            land = f"`stocklake land {kind} --until-idle 5`"
            fate = f"kept; {land} lands them" if kept else f"lost on stop: {land} first"
            lines.append(f"kafka: {topic} holds {count:,} records not landed yet ({fate})")
    return lines or ["kafka: no record of the pipeline topics waits to be landed"]


def report_dead_loads(settings: Settings) -> list[str]:
    """Lines naming the loads found dead (`running` rows of killed loads), now failed."""
    from loaders import fail_dead_loads

    try:
        dead = fail_dead_loads(settings)
    except Exception as error:
        return [f"warehouse: could not check for interrupted loads ({error})"]
    return [
        f"warehouse: load {load.run_id} of {load.table_name} marked failed: {load.cause}"
        for load in dead
    ]


def register(app: typer.Typer) -> None:
    @app.command()
    def up() -> None:
        """Start PostgreSQL, the S3 endpoint and Kafka on 127.0.0.1 (reuses healthy ones)."""
        settings = get_settings()
        started = time.monotonic()
        try:
            statuses = LocalStack(settings).up()
        except StackError as error:
            console.print(f"[red]stocklake up failed:[/red] {error}")
            raise typer.Exit(1) from None
        console.print(_table(statuses))
        console.print(
            f"up in {time.monotonic() - started:.1f} s; state, PID files and logs in "
            f"{settings.state_path}"
        )

    @app.command()
    def down() -> None:
        """Stop what `stocklake up`, `make airflow` and `stocklake dashboard --background`
        started (by PID); nothing else."""
        from cli.models import stop_all_apis
        from infra.airflow_ui import stop as stop_airflow
        from infra.dashboard_server import stop_dashboards

        settings = get_settings()
        for line in report_unlanded(settings):
            console.print(escape(line))
        for name in stop_airflow(settings):
            console.print(f"{name}: stopped")
        for url in stop_dashboards(settings):
            console.print(f"dashboard {url}: stopped")
        for url in stop_all_apis(settings):
            console.print(f"model API {url}: stopped")
        stopped = LocalStack(settings).down()
        for name, was_running in stopped:
            console.print(
                f"{name}: {'stopped' if was_running else 'not running (nothing to stop)'}"
            )

    @app.command()
    def status(
        as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    ) -> None:
        """Each service's endpoint, health, PID and memory; exit 1 if any is down.

        Loads left `running` by a killed loader or server are marked failed on the way.
        """
        settings = get_settings()
        statuses = LocalStack(settings).status()
        if as_json:
            print(statuses_json(statuses))
        else:
            console.print(_table(statuses))
        postgres = next((s for s in statuses if s.name == "postgres"), None)
        if postgres and postgres.healthy and settings.warehouse_kind == "postgres":
            for line in report_dead_loads(settings):
                (err_console if as_json else console).print(escape(line))
        if not all(s.healthy for s in statuses):
            raise typer.Exit(1)


def register_airflow(app: typer.Typer) -> None:
    @app.command(
        "airflow",
        context_settings={
            "allow_extra_args": True,
            "ignore_unknown_options": True,
            # `--help` goes to Airflow: `stocklake airflow backfill create --help`.
            "help_option_names": [],
        },
    )
    def airflow_command(ctx: typer.Context) -> None:
        """Run `airflow ARGS...` with stocklake's Airflow settings (metadata DB migrated first).

        Example: stocklake airflow dags test stock_market_batch 2020-12-30T22:00:00+00:00
        """
        from infra.airflow_ui import run_airflow

        raise typer.Exit(run_airflow(get_settings(), list(ctx.args)))

    @app.command("airflow-ui")
    def airflow_ui() -> None:
        """Start Airflow's UI (api-server), scheduler, dag-processor and triggerer."""
        from infra.airflow_ui import start

        settings = get_settings()
        try:
            url, user, password = start(settings)
        except StackError as error:
            console.print(f"[red]Airflow did not start:[/red] {error}")
            raise typer.Exit(1) from None
        console.print(f"Airflow UI: {url}  login: {user} / {password or '(see api-server log)'}")
        console.print("DAGs start paused: unpause them in the UI to run on schedule.")
        console.print("Stop everything with: make down")
