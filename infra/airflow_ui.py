"""`make airflow`: Airflow's api-server (UI), scheduler, dag-processor and triggerer.

Started as background processes with PID files and logs in the state folder,
like the rest of the embedded stack, and stopped by `stocklake down`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from infra.airflow_env import admin_login, airflow_env, airflow_home, secure_passwords_file
from infra.local_stack import StackError, pid_alive, spawn, terminate
from infra.service import http_ok
from stocklake.settings import Settings

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Airflow's log server binds every interface; here the UI reads the local log files,
# so it is not started and nothing listens beyond 127.0.0.1.
COMPONENT_ARGS = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
HEALTH_TIMEOUT_S = 120.0


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _env(settings: Settings) -> dict[str, str]:
    # The venv's bin on PATH: Airflow starts task runners by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **airflow_env(settings), "PATH": path}


def migrate(settings: Settings) -> None:
    """Create or upgrade the metadata DB (idempotent, about 2 s)."""
    airflow_home(settings).mkdir(parents=True, exist_ok=True)
    secure_passwords_file(settings)
    result = subprocess.run(
        [_airflow_bin(), "db", "migrate"], env=_env(settings), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StackError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")


def run_airflow(settings: Settings, args: list[str]) -> int:
    """Run an `airflow ...` command with stocklake's Airflow environment."""
    migrate(settings)
    return subprocess.call([_airflow_bin(), *args], env=_env(settings))


def _pid_file(settings: Settings, component: str) -> Path:
    return settings.state_path / "pids" / f"airflow-{component}.pid"


def _running(settings: Settings, component: str) -> int | None:
    try:
        pid = int(_pid_file(settings, component).read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def ui_url(settings: Settings) -> str:
    return f"http://{settings.bind_host}:{settings.airflow_port}"


def _healthy(settings: Settings) -> bool:
    return http_ok(f"{ui_url(settings)}/api/v2/monitor/health")


def start(settings: Settings) -> tuple[str, str, str | None]:
    """Start what is not running, wait for the UI; return (url, user, password)."""
    migrate(settings)
    env = _env(settings)
    logs = settings.state_path / "logs"
    for component in COMPONENTS:
        if _running(settings, component):
            continue
        cmd = [_airflow_bin(), component, *COMPONENT_ARGS.get(component, [])]
        pid = spawn(cmd, logs / f"airflow-{component}.log", env)
        _pid_file(settings, component).parent.mkdir(parents=True, exist_ok=True)
        _pid_file(settings, component).write_text(f"{pid}\n")
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while not _healthy(settings):
        if time.monotonic() > deadline:
            raise StackError(
                f"Airflow UI not healthy at {ui_url(settings)} after {HEALTH_TIMEOUT_S:.0f} s; "
                f"see {logs}/airflow-api-server.log"
            )
        if not _running(settings, "api-server"):
            raise StackError(f"airflow api-server exited; see {logs}/airflow-api-server.log")
        time.sleep(1)
    secure_passwords_file(settings)
    user, password = admin_login(settings)
    return ui_url(settings), user, password


def stop(settings: Settings) -> list[str]:
    """Stop the Airflow processes `start` launched; return their names."""
    stopped = []
    for component in reversed(COMPONENTS):
        pid = _running(settings, component)
        if pid:
            terminate(pid, timeout=20)
            stopped.append(f"airflow {component}")
        _pid_file(settings, component).unlink(missing_ok=True)
    return stopped
