"""`stocklake dashboard`: the Streamlit dashboard (dashboard/app.py) on the bind host.

In the foreground by default (Ctrl-C stops it); `--background` detaches it, with its PID
and log under `$STATE_DIR/dashboard/` (one pair per port), and `--stop` stops it.
Headless, without usage statistics; it reads only the warehouse (read-only role).
"""

from __future__ import annotations

import os
import sys

import typer

from infra.background import BackgroundServer
from infra.dashboard_server import server_for, start, streamlit_command, streamlit_env
from infra.service import StackError
from stocklake.settings import PROJECT_ROOT, Settings, get_settings


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        background: bool = typer.Option(
            False, "--background", help="Detach; PID and log under $STATE_DIR/dashboard/."
        ),
        stop_it: bool = typer.Option(False, "--stop", help="Stop the background dashboard."),
        port: int | None = typer.Option(
            None, "--port", min=1, max=65535, help="Port (default DASHBOARD_PORT, 8501)."
        ),
    ) -> None:
        """The Streamlit dashboard: market overview, symbol, real time, pipeline."""
        run_command(get_settings(), background=background, stop_it=stop_it, port=port)


def run_command(settings: Settings, *, background: bool, stop_it: bool, port: int | None) -> None:
    server = server_for(settings, port)
    if stop_it:
        pid = server.stop()
        typer.echo(f"dashboard stopped (pid {pid})" if pid else f"no dashboard on {server.url}")
        return
    pid = server.running_pid()
    if pid is not None:
        typer.echo(f"dashboard already running: {server.url} (pid {pid})")
        return
    if server.port_taken():
        typer.echo(f"error: port {server.port} on {server.host} is taken (--port, DASHBOARD_PORT)")
        raise typer.Exit(1)
    if background:
        try:
            pid = start(server)
        except StackError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"dashboard: {server.url} (pid {pid}, log {server.log_file})")
        typer.echo("stop it with: stocklake dashboard --stop" + _port_flag(server, settings))
        return
    typer.echo(f"dashboard: {server.url} (Ctrl-C stops it)", err=False)
    sys.stdout.flush()
    os.chdir(PROJECT_ROOT)
    os.execvpe(sys.executable, streamlit_command(server), streamlit_env())


def _port_flag(server: BackgroundServer, settings: Settings) -> str:
    return "" if server.port == settings.dashboard_port else f" --port {server.port}"


if __name__ == "__main__":  # `python -m cli.dashboard`, the command alone
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(standalone)
    standalone()
