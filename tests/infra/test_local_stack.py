"""`stocklake up` twice, `status`, `down`: a private stack on free ports, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.private_stack import cli, stack_env

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


_cli = cli


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _listening_sockets(pid: int) -> set[str]:
    """Local addresses the process listens on (TCP), from `ss`."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "state")
    ports = {
        "POSTGRES_PORT": int(env["POSTGRES_PORT"]),
        "S3": int(env["S3_ENDPOINT_URL"].rsplit(":", 1)[1]),
        "KAFKA": int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1]),
        "LAKE_CONSOLE_PORT": int(env["LAKE_CONSOLE_PORT"]),
    }
    # How long a cold `up` takes is measured by bench/bench_stack.py, not asserted here.
    first = _cli(env, "up")
    try:
        assert first.returncode == 0, first.stdout + first.stderr

        status = _cli(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        services = json.loads(status.stdout)
        assert [s["name"] for s in services] == ["postgres", "s3", "kafka"]
        assert all(s["healthy"] and s["managed"] for s in services)
        pids = {s["name"]: s["pid"] for s in services}

        # Everything the stack started listens on loopback only.
        for name, pid in pids.items():
            addresses = _listening_sockets(pid)
            assert addresses, f"{name} listens nowhere"
            assert all(a.startswith("127.0.0.1:") for a in addresses), (name, addresses)

        second = _cli(env, "up")
        assert second.returncode == 0, second.stdout + second.stderr
        again = {s["name"]: s["pid"] for s in json.loads(_cli(env, "status", "--json").stdout)}
        assert again == pids, "a second up must reuse the healthy services"
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    for name, pid in pids.items():
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pid_alive(pid), f"{name} (pid {pid}) still running after down"
    for name, port in ports.items():
        assert not _port_open(port), f"{name} port {port} still open after down"

    after = _cli(env, "status", "--json")
    assert after.returncode == 1
    assert not any(s["healthy"] for s in json.loads(after.stdout))

    # The cluster may live outside a closed tmp folder (see Postgres.cluster_root).
    pointer = tmp_path / "state" / "postgres" / "cluster-root"
    if pointer.exists():
        shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)


def test_down_does_not_touch_services_it_did_not_start(tmp_path: Path, stack) -> None:
    """A stack pointed at already-running services reuses them and leaves them running."""
    # A server that is not ours: its logins are given, as for any other server.
    env = {
        **os.environ,
        "STATE_DIR": str(tmp_path / "other-state"),
        "POSTGRES_PASSWORD": stack.postgres_login("pipeline")[1],
        "S3_SECRET_KEY": stack.s3_secret_key,
    }
    up = _cli(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    services = json.loads(_cli(env, "status", "--json").stdout)
    assert all(s["healthy"] and not s["managed"] for s in services)
    down = _cli(env, "down")
    assert down.returncode == 0
    assert "nothing to stop" in down.stdout
    still = json.loads(_cli(env, "status", "--json").stdout)
    assert all(s["healthy"] for s in still)


def test_bad_setting_fails_at_start_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "STATE_DIR": str(tmp_path), "POSTGRES_PORT": "70000"}
    result = _cli(env, "up")
    assert result.returncode == 2
    assert "POSTGRES_PORT" in result.stderr
