"""A private embedded stack (tests, benchmarks): its own state folder and free ports."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stocklake.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_block(low: int, high: int, offsets: tuple[int, ...]) -> int:
    for _ in range(200):
        base = random.randint(low, high)
        if all(port_free(base + offset) for offset in offsets):
            return base
    raise RuntimeError(f"no free ports in {low}..{high}")


def stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for `stocklake` commands on a private stack (every port free)."""
    env = {
        **os.environ,
        "STATE_DIR": str(state_dir),
        "POSTGRES_PORT": str(free_port()),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "SEAWEEDFS_PORTS_FROM": str(_free_block(20000, 29000, tuple(range(8)))),
        # The console's gRPC port is its HTTP port + 10000.
        "LAKE_CONSOLE_PORT": str(_free_block(30000, 45000, (0, 10000))),
    }
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def private_s3(kind: str = "seaweedfs") -> Iterator[Settings]:
    """A private embedded S3 server (its own state folder and ports), stopped afterwards.

    Yields settings whose endpoint, keys and lake bucket point at it (bucket provisioned).
    """
    from infra.s3_server import S3Server
    from stocklake.settings import get_settings

    state = Path(tempfile.mkdtemp(prefix=f"stocklake-s3-{kind}-"))
    env = stack_env(state)
    settings = get_settings().model_copy(
        update={
            "state_dir": state,
            "s3_server": kind,
            "s3_endpoint_url": env["S3_ENDPOINT_URL"],
            "seaweedfs_ports_from": int(env["SEAWEEDFS_PORTS_FROM"]),
            "lake_console_port": int(env["LAKE_CONSOLE_PORT"]),
            "kafka_storage": "memory",
        }
    )
    server = S3Server(settings)
    try:
        server.up()
        yield settings
    finally:
        server.down()
        shutil.rmtree(state, ignore_errors=True)
