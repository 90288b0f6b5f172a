"""A loader killed (SIGKILL) in the middle leaves PostgreSQL's table as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pytest

from loaders import DAILY_METRICS, load_daily
from tests.loaders.conftest import Backend
from tests.loaders.data import TestLake, canonical_rows, daily_metrics

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]

# Runs one load in a child process that kills itself at a named point.
CHILD = textwrap.dedent(
    """
    import os, signal, sys

    from loaders import postgres_backend
    from loaders.load import load_daily
    from stocklake.settings import load_settings

    point, schema, bucket = sys.argv[1:4]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "during-copy":
        real_encoder = postgres_backend.ArrowToPostgresBinaryEncoder

        class DyingEncoder:
            def __init__(self, schema):
                self.real = real_encoder(schema)

            def write_header(self):
                return self.real.write_header()

            def write_batch(self, batch):
                die()

        postgres_backend.ArrowToPostgresBinaryEncoder = DyingEncoder
    elif point == "after-merge":
        # The MERGE has run on the server; the audit row and COMMIT never come.
        postgres_backend.PostgresWarehouse._insert_audit = die
    load_daily(load_settings(LAKE_BUCKET=bucket, WAREHOUSE="postgres"), schema=schema)
    """
)


@pytest.mark.parametrize("point", ["during-copy", "after-merge"])
def test_killed_load_leaves_previous_contents(
    postgres: Backend, lake: TestLake, point: str
) -> None:
    backend = postgres
    lake.put_daily(daily_metrics("2020-12-28", "2020-12-29"))
    load_daily(backend.settings, schema=backend.schema)
    before = canonical_rows(backend.rows(DAILY_METRICS))

    changed = daily_metrics("2020-12-29", "2020-12-31")
    moved = pc.add(changed.column("daily_close"), 1.0)
    index = changed.schema.get_field_index("daily_close")
    lake.put_daily(changed.set_column(index, "daily_close", moved))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, point, backend.schema, lake.bucket],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr

    assert canonical_rows(backend.rows(DAILY_METRICS)) == before
    assert [a["status"] for a in backend.audit(DAILY_METRICS)] == ["succeeded"]
    # Nothing is left locked or half-done: the next load takes the changes in full.
    after = load_daily(backend.settings, schema=backend.schema)
    assert after.partitions == ["date=2020-12-29", "date=2020-12-30", "date=2020-12-31"]
    assert (after.rows_inserted, after.rows_updated) == (8, 4)
