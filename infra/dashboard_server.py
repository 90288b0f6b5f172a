"""The dashboard's server: `streamlit run dashboard/app.py` as a background process.

Like the rest of the embedded stack: a PID file and a log under `$STATE_DIR/dashboard/`
(one pair per port), health from Streamlit's own endpoint, stopped by `stocklake down`.
Headless, without usage statistics, on the bind host only.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from infra.service import StackError, cmdline, http_ok, port_open, spawn, terminate
from stocklake.processes import pid_alive
from stocklake.settings import PROJECT_ROOT, Settings

APP = PROJECT_ROOT / "dashboard" / "app.py"
START_TIMEOUT_S = 60.0


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
    """The dashboard on DASHBOARD_PORT (or `port`) on the bind host."""
    return Dashboard(
        host=settings.bind_host,
        port=port or settings.dashboard_port,
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
    """The environment, with the checkout first on PYTHONPATH (for `import dashboard`)."""
    paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def running_pid(server: Dashboard) -> int | None:
    """The PID the PID file names, if that process is still this dashboard."""
    try:
        pid = int(server.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    command = cmdline(pid) if pid_alive(pid) else ""
    return pid if "streamlit" in command and str(APP) in command else None


def port_in_use(server: Dashboard) -> bool:
    return port_open(server.host, server.port)


def healthy(server: Dashboard) -> bool:
    """Streamlit's own health endpoint answers."""
    return http_ok(f"{server.url}/_stcore/health")


def start(server: Dashboard, timeout: float = START_TIMEOUT_S) -> int:
    """Start the dashboard detached and wait until it is healthy: its PID."""
    pid = spawn(streamlit_command(server), server.log_file, streamlit_env(), cwd=PROJECT_ROOT)
    server.pid_file.write_text(f"{pid}\n")
    deadline = time.monotonic() + timeout
    while not healthy(server):
        if not pid_alive(pid) or time.monotonic() > deadline:
            stop(server)
            raise StackError(f"the dashboard did not start; see its log: {server.log_file}")
        time.sleep(0.25)
    return pid


def stop(server: Dashboard) -> int | None:
    """Stop the background dashboard (its process group): the PID stopped, or None."""
    pid = running_pid(server)
    if pid is not None:
        terminate(pid)
    server.pid_file.unlink(missing_ok=True)
    return pid


def stop_all(settings: Settings) -> list[str]:
    """Stop every dashboard this state folder started (`stocklake down`): their URLs."""
    stopped = []
    for pid_file in sorted((settings.state_path / "dashboard").glob("dashboard-*.pid")):
        port = int(pid_file.stem.rsplit("-", 1)[1])
        server = server_for(settings, port)
        if stop(server) is not None:
            stopped.append(server.url)
    return stopped
