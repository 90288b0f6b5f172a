"""The daily metrics job against s3a on the local S3 endpoint, checked against pandas."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from spark_jobs.daily import (
    CorruptInputError,
    NoDataError,
    requested_dates,
    run_daily,
)
from stocklake import lake
from stocklake.schemas import DAILY_METRICS_COLUMNS, DAILY_METRICS_KEY
from tests.spark_jobs.rawdata import (
    daily_bars,
    fb_minute_bars,
    put_raw_historical,
    raw_lines,
    reference_daily_metrics,
)

pytestmark = [pytest.mark.services, pytest.mark.spark]

MINUTES = fb_minute_bars()
# Real daily files over two months; facebook.csv really has no 2020-10-23.
DAILY = [
    bar
    for file, symbol in (("apple.csv", "AAPL"), ("facebook.csv", "FB"), ("tesla.csv", "TSLA"))
    for bar in daily_bars(file, symbol, "2020-10-01", "2020-11-30")
]
LATER = datetime(2024, 6, 1, tzinfo=UTC)
# Re-deliveries: 30 minute bars sent again later, one of them corrected.
REDELIVERED = [
    bar.model_copy(update={"ingested_at": LATER, "close": bar.close, "high": bar.high + 1.0})
    if n == 0
    else bar.model_copy(update={"ingested_at": LATER})
    for n, bar in enumerate(MINUTES[100:130])
]
# FB's daily bar for 2019-05-20 next to its minute bars: the minute bars win.
SUPERSEDED = daily_bars("facebook.csv", "FB", "2019-05-20", "2019-05-20")


def _processed(spark, settings) -> pd.DataFrame:
    root = lake.s3a_uri(settings.lake_bucket, lake.PROCESSED_HISTORICAL)
    frame = spark.read.parquet(root).toPandas()
    return frame.sort_values(list(DAILY_METRICS_KEY)).reset_index(drop=True)


def _checksum(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def _objects(client, settings) -> dict[str, str]:
    listing = client.list_objects_v2(
        Bucket=settings.lake_bucket, Prefix=lake.PROCESSED_HISTORICAL + "/"
    )
    return {item["Key"]: item["ETag"] for item in listing.get("Contents", [])}


@pytest.fixture(scope="module")
def landed(lake_settings, s3_client):
    bucket = lake_settings.lake_bucket
    put_raw_historical(s3_client, bucket, MINUTES, partition=0)
    put_raw_historical(s3_client, bucket, REDELIVERED, partition=0, first_offset=10_000)
    put_raw_historical(s3_client, bucket, SUPERSEDED, partition=1, first_offset=20_000)
    put_raw_historical(s3_client, bucket, DAILY, partition=2, first_offset=30_000)
    return lake_settings


@pytest.fixture(scope="module")
def full_run(spark, landed):
    return run_daily(landed, full_refresh=True, spark=spark)


def test_requested_dates_are_half_open() -> None:
    # [start, end) like Airflow's data intervals: the end date itself is not computed.
    assert requested_dates(date(2020, 2, 28), date(2020, 3, 1)) == [
        date(2020, 2, 28),
        date(2020, 2, 29),
    ]
    assert requested_dates(date(2020, 3, 1), date(2020, 3, 2)) == [date(2020, 3, 1)]
    for end in (date(2020, 3, 1), date(2020, 3, 2)):
        with pytest.raises(ValueError, match="must be after"):
            requested_dates(date(2020, 3, 2), end)


def test_metrics_equal_pandas(spark, landed, full_run) -> None:
    expected = reference_daily_metrics(MINUTES + REDELIVERED + DAILY).sort_values(
        list(DAILY_METRICS_KEY)
    )
    expected = expected.reset_index(drop=True)
    actual = _processed(spark, landed)
    assert list(actual.columns) == [name for name, _ in DAILY_METRICS_COLUMNS] + ["date"]
    assert len(actual) == len(expected) == 5 + 3 * 42 - 1
    assert full_run.output_rows == len(expected)
    assert full_run.input_rows == len(MINUTES) + len(REDELIVERED) + 1 + len(DAILY)
    assert full_run.duplicates_dropped == len(REDELIVERED)
    assert full_run.other_interval_bars == 1
    for name, kind in DAILY_METRICS_COLUMNS:
        if kind == "double":
            pd.testing.assert_series_equal(
                actual[name], expected[name].astype(float), check_names=False, rtol=1e-9
            )
        elif kind == "timestamp":
            assert list(pd.to_datetime(actual[name], utc=True)) == list(expected[name]), name
        else:
            assert list(actual[name]) == list(expected[name]), name
    # Known values from the files: FB's first minute opens at 181.62; the corrected bar won.
    fb_first = actual[(actual["symbol"] == "FB") & (actual["trade_date"] == date(2019, 5, 20))]
    assert fb_first["daily_open"].item() == 181.62
    assert fb_first["interval"].item() == "1m"
    # FB's real gap: 2020-10-26 returns against 2020-10-22's close.
    fb_26 = actual[(actual["symbol"] == "FB") & (actual["trade_date"] == date(2020, 10, 26))]
    fb_22 = actual[(actual["symbol"] == "FB") & (actual["trade_date"] == date(2020, 10, 22))]
    assert fb_26["prev_close"].item() == fb_22["daily_close"].item()


def test_rerun_leaves_same_content_and_one_file_per_date(
    spark, landed, full_run, s3_client
) -> None:
    before = _processed(spark, landed)
    run_daily(landed, date(2019, 5, 20), date(2019, 5, 25), spark=spark)
    run_daily(landed, date(2020, 10, 1), date(2020, 12, 1), on_empty="skip", spark=spark)
    after = _processed(spark, landed)
    assert _checksum(after) == _checksum(before)
    keys = [key for key in _objects(s3_client, landed) if key.endswith(".parquet")]
    dates = [lake.partition_date(key) for key in keys]
    assert len(dates) == len(set(dates)) == len(after["trade_date"].unique())


def test_one_date_rewrites_only_that_date(spark, landed, full_run, s3_client) -> None:
    before = _processed(spark, landed)
    objects_before = _objects(s3_client, landed)
    summary = run_daily(landed, date(2019, 5, 22), date(2019, 5, 23), spark=spark)
    assert summary.partitions_written == ["processed/historical/date=2019-05-22/"]
    assert summary.output_rows == 1
    objects_after = _objects(s3_client, landed)
    # The date is rewritten under the same name; no other object changed (same content
    # gives the same ETag, so the loader sees no change either).
    assert objects_after.keys() == objects_before.keys()
    changed = set(objects_before.items()) ^ set(objects_after.items())
    assert {lake.partition_date(key) for key, _ in changed} <= {date(2019, 5, 22)}
    # The single-date run looked back for prev_close: same numbers as the full run.
    assert _checksum(_processed(spark, landed)) == _checksum(before)


def test_no_data_for_a_trading_date_is_named(spark, landed, full_run) -> None:
    # Tuesday 2020-12-01 and Wednesday 2020-12-02 are trading dates with no bar landed.
    with pytest.raises(NoDataError, match="2020-12-01"):
        run_daily(landed, date(2020, 11, 30), date(2020, 12, 2), spark=spark)
    summary = run_daily(landed, date(2020, 11, 30), date(2020, 12, 3), on_empty="skip", spark=spark)
    assert summary.dates_written == ["2020-11-30"]
    assert summary.dates_skipped == ["2020-12-01", "2020-12-02"]
    with pytest.raises(NoDataError, match="2031-01-02"):
        run_daily(landed, date(2031, 1, 2), date(2031, 1, 3), spark=spark)


def test_dates_that_are_not_trading_days_are_skipped_up_front(spark, landed, full_run) -> None:
    # Friday 2020-10-23 to Monday 2020-10-26: the weekend has no session, it is not "empty".
    summary = run_daily(landed, date(2020, 10, 23), date(2020, 10, 27), spark=spark)
    assert summary.dates_written == ["2020-10-23", "2020-10-26"]
    assert summary.dates_not_trading == ["2020-10-24 (Saturday)", "2020-10-25 (Sunday)"]
    assert summary.dates_skipped == []
    # Only closed days: nothing is read, nothing fails.
    summary = run_daily(landed, date(2020, 12, 25), date(2020, 12, 28), spark=spark)
    assert summary.dates_not_trading == [
        "2020-12-25 (holiday: Christmas)",
        "2020-12-26 (Saturday)",
        "2020-12-27 (Sunday)",
    ]
    assert (summary.input_rows, summary.dates_written, summary.dates_skipped) == (0, [], [])


def test_corrupt_file_fails_with_its_path(spark, landed, full_run, s3_client) -> None:
    bucket = landed.lake_bucket
    good = raw_lines(daily_bars("apple.csv", "AAPL", "2020-12-01", "2020-12-01"), "hist", 3, 0)
    key = (
        lake.raw_historical_prefix(date(2020, 12, 1))
        + lake.OffsetRange("hist", 3, 0, 1).object_name()
    )
    s3_client.put_object(Bucket=bucket, Key=key, Body=good[0] + b"\n{not json\n")
    with pytest.raises(CorruptInputError) as error:
        run_daily(landed, date(2020, 12, 1), date(2020, 12, 2), spark=spark)
    assert key in str(error.value)
    s3_client.delete_object(Bucket=bucket, Key=key)

    missing_close = good[0].replace(b'"close":', b'"closing":')
    key2 = (
        lake.raw_historical_prefix(date(2020, 12, 2))
        + lake.OffsetRange("hist", 3, 2, 2).object_name()
    )
    s3_client.put_object(Bucket=bucket, Key=key2, Body=missing_close + b"\n")
    with pytest.raises(CorruptInputError, match="close") as error:
        run_daily(landed, date(2020, 12, 2), date(2020, 12, 3), spark=spark)
    assert key2 in str(error.value)
    s3_client.delete_object(Bucket=bucket, Key=key2)


def test_option_errors(landed) -> None:
    with pytest.raises(ValueError, match="full-refresh"):
        run_daily(landed, date(2020, 1, 1), date(2020, 1, 2), full_refresh=True)
    with pytest.raises(ValueError, match="--date"):
        run_daily(landed)
    with pytest.raises(ValueError, match="on_empty"):
        run_daily(landed, date(2020, 1, 1), date(2020, 1, 2), on_empty="ignore")  # type: ignore[arg-type]
