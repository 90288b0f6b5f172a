"""`stocklake dashboard`: the Streamlit dashboard (dashboard/app.py) on the bind host.

In the foreground by default (Ctrl-C stops it); `--background` detaches it, with its PID
and log under `$STATE_DIR/dashboard/` (one pair per port), and `--stop` stops it.
Headless, without usage statistics; it reads only the warehouse (read-only role).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import typer

from stocklake.processes import pid_alive
from stocklake.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
DEFAULT_PORT = 8501
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def dashboard_port(settings: Settings) -> int:
    """DASHBOARD_PORT (default 8501)."""
    return int(getattr(settings, "dashboard_port", DEFAULT_PORT))


@dataclass(frozen=True)
class Dashboard:
    """One dashboard server: where it listens and where its PID and log files are."""

    host: str
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / f"dashboard-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"dashboard-{self.port}.log"


def server_for(settings: Settings, port: int | None = None) -> Dashboard:
    return Dashboard(
        host=settings.bind_host,
        port=port or dashboard_port(settings),
        folder=settings.state_path / "dashboard",
    )


def streamlit_command(server: Dashboard) -> list[str]:
    """`streamlit run dashboard/app.py`, headless, no telemetry, on the bind host."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--server.address", server.host,
        "--server.port", str(server.port),
    ]  # fmt: skip


def streamlit_env() -> dict[str, str]:
    """The environment, with the checkout on PYTHONPATH (for `import dashboard`)."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def running_pid(server: Dashboard) -> int | None:
    """The PID of the dashboard the PID file names, if that process is still ours."""
    try:
        pid = int(server.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None
    return pid if "streamlit" in command and str(APP) in command else None


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def healthy(server: Dashboard) -> bool:
    """Streamlit's own health endpoint answers `ok`."""
    try:
        with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_background(server: Dashboard, timeout: float = START_TIMEOUT_S) -> int:
    """Start the dashboard detached (own session), wait until it is healthy: its PID."""
    server.folder.mkdir(parents=True, exist_ok=True)
    with server.log_file.open("ab") as log:
        process = subprocess.Popen(
            streamlit_command(server),
            cwd=ROOT,
            env=streamlit_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not healthy(server):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"the dashboard did not start; see its log: {server.log_file}")
        time.sleep(0.25)
    return process.pid


def stop(server: Dashboard, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """Stop the background dashboard (its whole session): the PID stopped, or None."""
    pid = running_pid(server)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
    server.pid_file.unlink(missing_ok=True)
    return pid


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # started with start_new_session: its group is its PID


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
        pid = stop(server)
        typer.echo(f"dashboard stopped (pid {pid})" if pid else f"no dashboard on {server.url}")
        return
    pid = running_pid(server)
    if pid is not None:
        typer.echo(f"dashboard already running: {server.url} (pid {pid})")
        return
    if port_in_use(server.host, server.port):
        typer.echo(f"error: port {server.port} on {server.host} is taken (--port, DASHBOARD_PORT)")
        raise typer.Exit(1)
    if background:
        try:
            pid = start_background(server)
        except RuntimeError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"dashboard: {server.url} (pid {pid}, log {server.log_file})")
        typer.echo("stop it with: stocklake dashboard --stop" + _port_flag(server, settings))
        return
    typer.echo(f"dashboard: {server.url} (Ctrl-C stops it)", err=False)
    sys.stdout.flush()
    os.chdir(ROOT)
    os.execvpe(sys.executable, streamlit_command(server), streamlit_env())


def _port_flag(server: Dashboard, settings: Settings) -> str:
    return "" if server.port == dashboard_port(settings) else f" --port {server.port}"


if __name__ == "__main__":  # `python -m cli.dashboard`, the command alone
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(standalone)
    standalone()
