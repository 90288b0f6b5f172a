"""A commit the warehouse acknowledged survives a kill -9 of PostgreSQL right after it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from stocklake.settings import load_settings
from tests.private_stack import cli, kill_9_tree, stack_env

pytestmark = pytest.mark.services


def test_acknowledged_commits_survive_kill_9(tmp_path: Path) -> None:
    import psycopg

    env = stack_env(tmp_path / "state")
    # The pipeline's role, with the password `up` generates into the private state folder.
    settings = load_settings(STATE_DIR=env["STATE_DIR"], POSTGRES_PORT=env["POSTGRES_PORT"])
    try:
        for attempt in range(5):
            up = cli(env, "up")
            assert up.returncode == 0, up.stdout + up.stderr
            pid = json.loads(cli(env, "status", "--json").stdout)[0]["pid"]
            with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS acknowledged (n int PRIMARY KEY)")
                time.sleep(0.5)
                conn.execute("INSERT INTO acknowledged VALUES (%s)", (attempt,))
                # Acknowledged: the server dies at once, before any background flush.
                kill_9_tree(pid)
        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        with psycopg.connect(settings.postgres_dsn()) as conn:
            kept = [row[0] for row in conn.execute("SELECT n FROM acknowledged ORDER BY n")]
        assert kept == list(range(5)), f"acknowledged commits lost: kept only {kept}"
    finally:
        cli(env, "down")
        pointer = tmp_path / "state" / "postgres" / "cluster-root"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)
