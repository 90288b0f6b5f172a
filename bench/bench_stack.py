"""Benchmark the embedded stack: cold and warm `stocklake up`, idle RSS per service.

Runs a private stack (its own state folder and free ports) so a running
development stack is not disturbed, then stops it.

    .venv/bin/python bench/bench_stack.py [--idle-seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"stocklake {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="stocklake-bench-"))
    env = {
        **os.environ,
        "STATE_DIR": str(state),
        "POSTGRES_PORT": str(free_port()),
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    try:
        started = time.monotonic()
        cli(env, "up")
        cold = time.monotonic() - started

        started = time.monotonic()
        cli(env, "up")
        warm = time.monotonic() - started

        cli(env, "down")
        started = time.monotonic()
        cli(env, "up")
        restart = time.monotonic() - started

        time.sleep(args.idle_seconds)
        services = json.loads(cli(env, "status", "--json").stdout)
    finally:
        cli(env, "down")
        pointer = state / "postgres" / "cluster-root"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)

    print(f"stocklake up, cold (initdb, new state):  {cold:6.2f} s")
    print(f"stocklake up, all already healthy:       {warm:6.2f} s")
    print(f"stocklake up, restart on existing state: {restart:6.2f} s")
    print(f"idle RSS after {args.idle_seconds:.0f} s (process and its children):")
    for service in services:
        print(f"  {service['name']:<9} {service['kind']:<11} {service['rss_mb']:8.1f} MB")


if __name__ == "__main__":
    main()
