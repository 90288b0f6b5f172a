"""A server the project leaves running in the background: the dashboard, the model API.

Like the rest of the embedded stack: a PID file and a log per port under a state folder,
health from the server's own endpoint, stopped by `stocklake down`. A PID file is only
trusted while its process's command line still names the server (`marker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.service import StackError, cmdline, http_ok, port_open, spawn, tail, terminate
from stocklake.processes import pid_alive
from stocklake.settings import PROJECT_ROOT


@dataclass(frozen=True)
class BackgroundServer:
    """One background server: where it listens, how to check it, its PID and log files."""

    name: str
    host: str
    port: int
    folder: Path
    health_path: str
    marker: str  # a part of its command line: a PID file naming another process is stale

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}-{self.port}.log"

    def running_pid(self) -> int | None:
        """The PID the PID file names, if that process is still this server."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        command = cmdline(pid) if pid_alive(pid) else ""
        return pid if self.marker in command else None

    def port_taken(self) -> bool:
        return port_open(self.host, self.port)

    def healthy(self) -> bool:
        return http_ok(f"{self.url}{self.health_path}")

    def start(
        self, command: list[str], env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> int:
        """Start detached and wait until healthy: its PID (StackError, with the log's
        last lines, if it exits or is not healthy in time)."""
        pid = spawn(command, self.log_file, env, cwd=PROJECT_ROOT)
        self.pid_file.write_text(f"{pid}\n")
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not pid_alive(pid) or time.monotonic() > deadline:
                self.stop()
                raise StackError(
                    f"the {self.name} server did not start on {self.url}; its log "
                    f"{self.log_file} ends:\n{tail(self.log_file, 5)}"
                )
            time.sleep(0.25)
        return pid

    def stop(self) -> int | None:
        """Stop it (its process group): the PID stopped, or None if it was not running."""
        pid = self.running_pid()
        if pid is not None:
            terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        return pid


def stop_all(folder: Path, name: str, server_on: Callable[[int], BackgroundServer]) -> list[str]:
    """Stop every `name` server with a PID file in `folder`: the URLs stopped."""
    stopped = []
    for pid_file in sorted(folder.glob(f"{name}-*.pid")):
        port = pid_file.stem.rsplit("-", 1)[1]
        if port.isdigit():
            server = server_on(int(port))
            if server.stop() is not None:
                stopped.append(server.url)
    return stopped
