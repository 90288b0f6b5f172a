"""A load killed in the middle (kill -9 of the loader, or of PostgreSQL) leaves the table
as it was and its `running` audit row behind; the next load of the table marks that row
`failed` with the cause."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from loaders import DAILY_METRICS, fail_dead_loads, load_daily
from stocklake.s3 import lake_filesystem
from stocklake.settings import load_settings
from tests.loaders.conftest import Backend
from tests.loaders.data import TestLake, canonical_rows, daily_metrics
from tests.private_stack import cli, kill_9_tree, stack_env

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]

# Runs one load in a child process that kills itself, or waits, at a named point.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path

    from loaders import postgres_backend
    from loaders.load import load_daily
    from stocklake.settings import load_settings

    point, schema, bucket, signals = sys.argv[1:5]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def wait_for_go(*args, **kwargs):
        # Tell the test the load is inside its COPY, then wait until it says go on.
        Path(signals, "copying").touch()
        deadline = time.monotonic() + 60
        while not Path(signals, "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return b""

    if point in ("during-copy", "pause-in-copy"):
        real_encoder = postgres_backend.ArrowToPostgresBinaryEncoder
        stop = die if point == "during-copy" else wait_for_go

        class StoppingEncoder:
            def __init__(self, schema):
                self.real = real_encoder(schema)

            def write_header(self):
                return self.real.write_header()

            def write_batch(self, batch):
                return stop()

            def finish(self):
                return self.real.finish()

        postgres_backend.ArrowToPostgresBinaryEncoder = StoppingEncoder
    elif point == "after-merge":
        # The MERGE has run on the server; the succeeded audit row and COMMIT never come.
        real_write = postgres_backend.PostgresWarehouse._write_audit

        def write_or_die(self, audit):
            if audit.status == "succeeded":
                die()
            return real_write(self, audit)

        postgres_backend.PostgresWarehouse._write_audit = write_or_die
    load_daily(load_settings(LAKE_BUCKET=bucket, WAREHOUSE="postgres"), schema=schema)
    """
)


def _start_child(
    point: str, schema: str, bucket: str, signals: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, point, schema, bucket, str(signals)],
        cwd=ROOT,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _changed_lake(lake: TestLake) -> None:
    """2020-12-29..31 with moved closes: 8 new rows and 4 updates for the next load."""
    changed = daily_metrics("2020-12-29", "2020-12-31")
    moved = pc.add(changed.column("daily_close"), 1.0)
    index = changed.schema.get_field_index("daily_close")
    lake.put_daily(changed.set_column(index, "daily_close", moved))


@pytest.mark.parametrize("point", ["during-copy", "after-merge"])
def test_killed_load_leaves_previous_contents_and_is_marked_failed_next_time(
    postgres: Backend, lake: TestLake, point: str, tmp_path: Path
) -> None:
    backend = postgres
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-29"))
    load_daily(backend.settings, schema=backend.schema)
    before = canonical_rows(backend.rows(DAILY_METRICS))
    _changed_lake(lake)

    child = _start_child(point, backend.schema, lake.bucket, tmp_path)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, stderr

    assert canonical_rows(backend.rows(DAILY_METRICS)) == before
    audits = backend.audit(DAILY_METRICS)
    assert [a["status"] for a in audits] == ["succeeded", "running"]
    assert (audits[1]["loader_pid"], audits[1]["loader_host"]) == (
        child.pid,
        socket.gethostname(),
    )
    # The next load marks the dead one failed, then takes the changes in full.
    after = load_daily(backend.settings, schema=backend.schema)
    assert after.partitions == ["date=2020-12-29", "date=2020-12-30", "date=2020-12-31"]
    assert (after.rows_inserted, after.rows_updated) == (8, 4)
    cause = f"load process gone (pid {child.pid} on host {socket.gethostname()})"
    assert after.dead_loads_failed == [f"{audits[1]['run_id']}: {cause}"]
    audits = backend.audit(DAILY_METRICS)
    assert [a["status"] for a in audits] == ["succeeded", "failed", "succeeded"]
    assert audits[1]["error"] == cause and audits[1]["finished_at"] is not None


def test_status_check_marks_a_killed_load_failed(
    postgres: Backend, lake: TestLake, tmp_path: Path
) -> None:
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-29"))
    child = _start_child("during-copy", postgres.schema, lake.bucket, tmp_path)
    child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL

    (dead,) = fail_dead_loads(postgres.settings, schema=postgres.schema)
    assert dead.cause == f"load process gone (pid {child.pid} on host {socket.gethostname()})"
    (audit,) = postgres.audit(DAILY_METRICS)
    assert (audit["status"], audit["error"]) == ("failed", dead.cause)
    assert fail_dead_loads(postgres.settings, schema=postgres.schema) == []


def test_running_load_is_never_marked_failed(
    postgres: Backend, lake: TestLake, tmp_path: Path
) -> None:
    """While the loader's session lives, its row stays `running` for every checker."""
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-29"))
    child = _start_child("pause-in-copy", postgres.schema, lake.bucket, tmp_path)
    try:
        _wait_for(tmp_path / "copying", child)
        assert fail_dead_loads(postgres.settings, schema=postgres.schema) == []
        assert [a["status"] for a in postgres.audit(DAILY_METRICS)] == ["running"]
    finally:
        (tmp_path / "go").touch()
        child.communicate(timeout=120)
    assert child.returncode == 0, child.stderr
    assert [a["status"] for a in postgres.audit(DAILY_METRICS)] == ["succeeded"]


def _wait_for(marker: Path, child: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert child.poll() is None, child.communicate()[1]
        assert time.monotonic() < deadline, f"the loader never reached {marker.name}"
        time.sleep(0.05)


def test_load_interrupted_by_a_killed_postgres_is_marked_failed_after_up(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "state", KAFKA_STORAGE="memory", WAREHOUSE="postgres")
    keys = ("STATE_DIR", "POSTGRES_PORT", "S3_ENDPOINT_URL", "WAREHOUSE")
    settings = load_settings(**{key: env[key] for key in keys})
    try:
        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        lake = TestLake(lake_filesystem(settings), settings.lake_bucket)
        lake.put_daily(daily_metrics("2020-12-28", "2020-12-31"))
        schema = settings.warehouse_schema
        child = _start_child("pause-in-copy", schema, settings.lake_bucket, tmp_path, env)
        _wait_for(tmp_path / "copying", child)
        kill_9_tree(json.loads(cli(env, "status", "--json").stdout)[0]["pid"])
        (tmp_path / "go").touch()
        _, stderr = child.communicate(timeout=120)
        # The loader saw the server go and could not record its own failure.
        assert child.returncode == 1 and "could not be audited either" in stderr, stderr

        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        summary = load_daily(settings)
        assert summary.rows_inserted == 16
        (dead,) = summary.dead_loads_failed
        assert "interrupted: PostgreSQL restarted at" in dead
        backend = Backend("postgres", settings, schema)
        assert [a["status"] for a in backend.audit(DAILY_METRICS)] == ["failed", "succeeded"]
    finally:
        cli(env, "down")
        pointer = tmp_path / "state" / "postgres" / "cluster-root"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)
