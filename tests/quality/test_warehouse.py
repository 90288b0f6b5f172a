"""The warehouse side (`loaders.checks.warehouse_quality`) on both backends: a loaded date's
rows hash as the lake partition's, with the core's one canonical checksum."""

from __future__ import annotations

from datetime import date

import pytest

from loaders import load_daily, load_realtime
from loaders.checks import warehouse_quality
from tests.loaders.conftest import Backend, backend
from tests.loaders.data import TestLake, daily_metrics, window_metrics

__all__ = ["backend"]
pytestmark = pytest.mark.services


def test_loaded_rows_hash_as_the_lake_partition(backend: Backend, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))
    lake.put_windows(window_metrics("2019-05-20"))
    load_daily(backend.settings, schema=backend.schema)
    load_realtime(backend.settings, schema=backend.schema)
    for dataset, day in (
        ("daily_metrics", date(2020, 12, 31)),
        ("window_metrics", date(2019, 5, 20)),
    ):
        count, checksum = warehouse_quality(backend.settings, dataset, day, "w1", backend.schema)
        assert (count["status"], checksum["status"]) == ("passed", "passed"), (count, checksum)
        assert checksum["observed"] == checksum["expected"]
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31", symbols=("AAPL",)))
    count, checksum = warehouse_quality(
        backend.settings, "daily_metrics", date(2020, 12, 31), "w2", backend.schema
    )
    # The partition lost three symbols since the load: counts and checksums disagree.
    assert (count["observed"], count["expected"], count["status"]) == ("4", "1", "failed")
    assert checksum["status"] == "warned" and "load the date again" in checksum["detail"]


def test_a_day_with_only_its_15_minute_windows_checks_those(lake: TestLake) -> None:
    import pyarrow.compute as pc

    from quality import run_checks
    from quality.lake_read import PartitionNotFoundError
    from stocklake.settings import load_settings

    settings = load_settings(LAKE_BUCKET=lake.bucket)
    with pytest.raises(PartitionNotFoundError, match="window=15m/date=2019-05-20"):
        run_checks(settings, "window_metrics", date(2019, 5, 20), "w0")
    windows = window_metrics("2019-05-20")
    lake.put_windows(windows.filter(pc.equal(windows["window_size"], "15m")))
    rows = run_checks(settings, "window_metrics", date(2019, 5, 20), "w1")
    assert rows and {row["partition_name"] for row in rows} == {
        "processed/realtime/window=15m/date=2019-05-20/"
    }
    assert {row["status"] for row in rows} == {"passed"}
