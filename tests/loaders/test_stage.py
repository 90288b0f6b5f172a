"""PostgreSQL's stage: the rows once per key, in key order, and the counts kept."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loaders import DAILY_METRICS, load_daily
from loaders.postgres_backend import STAGE_TEMP_BUFFERS, PostgresWarehouse
from tests.loaders.conftest import Backend
from tests.loaders.data import TestLake, daily_metrics

pytestmark = pytest.mark.services


def test_the_stage_gets_each_key_once_in_key_order_and_keeps_counts(
    postgres: Backend, lake: TestLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = daily_metrics("2020-12-28", "2020-12-30")
    # Rows out of key order, one key twice.
    shuffled = source.take(pa.array(list(range(source.num_rows - 1, -1, -1))))
    lake.put_daily(pa.concat_tables([shuffled, shuffled.slice(0, 1)]))
    staged: list[pa.Table] = []
    buffers: list[str] = []
    original = PostgresWarehouse._stage

    def spying(self, table, stage, rows):
        staged.append(rows)
        buffers.append(self.conn.execute("SHOW temp_buffers").fetchone()[0])
        return original(self, table, stage, rows)

    monkeypatch.setattr(PostgresWarehouse, "_stage", spying)
    first = load_daily(postgres.settings, schema=postgres.schema)
    n = source.num_rows
    assert (first.rows_duplicate, first.rows_staged) == (1, n)
    assert (first.rows_inserted, first.rows_updated, first.rows_unchanged) == (n, 0, 0)
    keys = list(zip(*(staged[0].column(k).to_pylist() for k in DAILY_METRICS.key), strict=True))
    assert keys == sorted(keys)
    assert buffers == [STAGE_TEMP_BUFFERS]
    again = load_daily(postgres.settings, schema=postgres.schema, full_refresh=True)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, n)
