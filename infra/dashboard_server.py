"""The dashboard's server: `streamlit run dashboard/app.py` in the background.

Headless, without usage statistics, on the bind host only; a PID file and a log per port
under `$STATE_DIR/dashboard/` (see `infra.background`); stopped by `stocklake down`.
"""

from __future__ import annotations

import os
import sys

from infra.background import BackgroundServer, stop_all
from stocklake.settings import PROJECT_ROOT, Settings

APP = PROJECT_ROOT / "dashboard" / "app.py"


def server_for(settings: Settings, port: int | None = None) -> BackgroundServer:
    """The dashboard on DASHBOARD_PORT (or `port`) on the bind host."""
    return BackgroundServer(
        name="dashboard",
        host=settings.bind_host,
        port=port or settings.dashboard_port,
        folder=settings.state_path / "dashboard",
        health_path="/_stcore/health",
        marker=str(APP),
    )


def streamlit_command(server: BackgroundServer) -> list[str]:
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


def start(server: BackgroundServer) -> int:
    """Start the dashboard detached and wait until it is healthy: its PID."""
    return server.start(streamlit_command(server), streamlit_env())


def stop_dashboards(settings: Settings) -> list[str]:
    """Stop every dashboard this state folder started (`stocklake down`): their URLs."""
    return stop_all(
        settings.state_path / "dashboard", "dashboard", lambda port: server_for(settings, port)
    )
