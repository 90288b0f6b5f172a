"""What every embedded service shares: PID files, health waits, start and stop.

A `Service` says how to start, check and provision one process; `up()` starts
it only when it is not already reachable, waits for it, provisions, and checks
health. `down()` stops only a process that `up` started (PID file plus a
command-line check).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from stocklake.processes import pid_alive
from stocklake.settings import LOCAL_HOSTS, Settings

HEALTH_TIMEOUT_S = 30.0


class StackError(RuntimeError):
    """A service could not be started, reached or provisioned; the message says which."""


@dataclass
class ServiceStatus:
    name: str
    kind: str
    endpoint: str
    healthy: bool
    managed: bool  # started by `stocklake up` (so `down` will stop it)
    pid: int | None = None
    rss_mb: float | None = None
    log: str | None = None
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def is_local_host(host: str) -> bool:
    return host in LOCAL_HOSTS


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether GET `url` answers 200 (a service's health endpoint)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def cmdline(pid: int) -> str:
    """The process's command line, its arguments joined by spaces ("" if it is gone)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process and its children (PostgreSQL forks workers)."""
    if not pid or not pid_alive(pid):
        return None
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return round(total / 2**20, 1)
    except Exception:
        return None


def wait_for(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    hint = ""
    if log and log.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        hint = f"\nlast lines of {log}:\n" + "\n".join(tail)
    raise StackError(f"{what} did not become healthy within {timeout:.0f} s{hint}")


class Service:
    """One process of the stack; subclasses say how to start, check and provision it."""

    name = "service"
    #: substring that must be in the process's command line before we signal it
    process_marker = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = settings.state_path / self.name
        self.pid_file = settings.state_path / "pids" / f"{self.name}.pid"
        self.log_file = settings.state_path / "logs" / f"{self.name}.log"

    # --- to implement -----------------------------------------------------
    @property
    def kind(self) -> str:
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    @property
    def is_local(self) -> bool:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def start(self) -> int:
        """Start the process; return its PID."""
        raise NotImplementedError

    def provision(self) -> None:
        """Create what the pipeline needs (idempotent)."""

    # --- shared behaviour -------------------------------------------------
    def managed_pid(self) -> int | None:
        """The PID `up` recorded, if that process is still ours and alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.process_marker in cmdline(pid):
            return pid
        return None

    def write_pid(self, pid: int) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{pid}\n")

    def reachable(self) -> bool:
        """The process answers (it may not be provisioned yet); `healthy` by default."""
        return self.healthy()

    def up(self) -> ServiceStatus:
        if not self.reachable():
            if not self.is_local:
                raise StackError(
                    f"{self.name}: {self.endpoint} is not reachable and is not on this "
                    "machine, so `stocklake up` cannot start it; check its settings"
                )
            pid = self.managed_pid()
            if pid is None:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                self.ensure_port_free()
                pid = self.start()
                self.write_pid(pid)
            started = pid

            def ready() -> bool:
                if not pid_alive(started):
                    raise StackError(
                        f"{self.name} exited during start-up; see {self.log_file}:\n"
                        + tail(self.log_file)
                    )
                return self.reachable()

            wait_for(ready, HEALTH_TIMEOUT_S, f"{self.name} at {self.endpoint}", self.log_file)
        self.provision()
        wait_for(self.healthy, HEALTH_TIMEOUT_S, f"{self.name} at {self.endpoint}", self.log_file)
        return self.status()

    def ports(self) -> dict[str, int]:
        """Every port the process will listen on, by the setting that names it."""
        return {"port": self.host_port()[1]}

    def ensure_port_free(self) -> None:
        host = self.host_port()[0]
        for setting, port in self.ports().items():
            if port_open(host, port):
                raise StackError(
                    f"{self.name}: port {port} on {host} ({setting}) is taken by another "
                    f"program that does not answer as {self.kind}; free it or change "
                    f"{setting} in .env"
                )

    def host_port(self) -> tuple[str, int]:
        raise NotImplementedError

    def down(self) -> bool:
        """Stop the process `up` started; False when there was none."""
        pid = self.managed_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self.stop(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def stop(self, pid: int) -> None:
        terminate(pid)

    def status(self) -> ServiceStatus:
        pid = self.managed_pid()
        healthy = self.healthy()
        return ServiceStatus(
            name=self.name,
            kind=self.kind,
            endpoint=self.endpoint,
            healthy=healthy,
            managed=pid is not None,
            pid=pid,
            rss_mb=rss_mb(pid),
            log=str(self.log_file) if pid else None,
        )


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal(pid: int, sig: int) -> None:
    # Our spawned processes lead their own process group: signal it all.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process (group), then SIGKILL what is left after `timeout`."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    _signal(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    if alive and pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        psutil.wait_procs([proc], timeout=2)


def spawn(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start a detached process (own session, so it survives the CLI) logging to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            close_fds=True,
        )
    return proc.pid
