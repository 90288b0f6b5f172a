"""Every rolling feature equals an independent pandas computation on the bundled real
daily and 1-minute files (relative tolerance 1e-9), first rows and gaps included."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from spark_jobs.daily import run_daily
from spark_jobs.features import daily_features, intraday_features
from spark_jobs.features_job import run_features
from stocklake import lake
from tests import reference
from tests.spark_jobs.rawdata import daily_bars, fb_minute_bars, put_raw_historical

FILES = {symbol: reference.DAILY_FILES[symbol] for symbol in ("AAPL", "META", "^GSPC")}
# A gap of our own on top of facebook.csv's real one (2020-10-23): a week without AAPL.
DROPPED = {"AAPL": set(pd.date_range("2020-03-02", "2020-03-06").date)}


def _assert_frames_equal(actual: pd.DataFrame, expected: pd.DataFrame, key: list[str]) -> None:
    actual = actual.sort_values(key).reset_index(drop=True)
    expected = expected.sort_values(key).reset_index(drop=True)
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in actual.columns:
        got, want = actual[column], expected[column]
        if column in key or got.dtype == object:
            assert got.astype(str).tolist() == want.astype(str).tolist(), column
            continue
        got, want = got.to_numpy(dtype=float), want.to_numpy(dtype=float)
        assert (np.isnan(got) == np.isnan(want)).all(), f"{column}: nulls differ"
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=column)


def test_daily_features_equal_pandas_on_real_bars(spark) -> None:
    metrics = reference.daily_metrics(FILES, DROPPED)
    frame = spark.createDataFrame(metrics)
    actual = daily_features(frame).toPandas()
    expected = reference.daily_features(metrics)
    _assert_frames_equal(actual, expected, ["symbol", "trade_date"])
    # The first rows: nulls until each window is full, per symbol.
    first = actual[actual["symbol"] == "^GSPC"].sort_values("trade_date").reset_index()
    assert first["sma_7"].isna().sum() == 6 and first["sma_30"].isna().sum() == 29
    assert first["volatility_20d"].isna().sum() == 20  # the first row has no return
    assert first["return_zscore_60d"].isna().sum() == 61
    # Across the AAPL gap the previous trading day present is used.
    aapl = actual[actual["symbol"] == "AAPL"].set_index("trade_date")
    after_gap = aapl.loc[pd.Timestamp("2020-03-09").date()]
    assert after_gap["log_return"] == pytest.approx(
        math.log(after_gap["close"] / aapl.loc[pd.Timestamp("2020-02-28").date()]["close"])
    )


def test_intraday_features_equal_pandas_on_real_minutes(spark) -> None:
    bars = reference.minute_bars(gap=True)
    frame = spark.createDataFrame(bars)
    actual = intraday_features(frame).toPandas()
    actual["bar_ts"] = pd.to_datetime(actual["bar_ts"]).dt.tz_localize("UTC")
    expected = reference.intraday_features(bars)
    _assert_frames_equal(actual, expected, ["symbol", "bar_ts"])
    # Each session starts empty: no 5-minute return before its sixth minute.
    first_day = actual[actual["trade_date"] == actual["trade_date"].min()]
    assert first_day["return_5m"].isna().sum() == 5
    assert first_day["return_60m"].isna().sum() == 60


def _features(spark, settings, base: str) -> pd.DataFrame:
    frame = spark.read.parquet(lake.s3a_uri(settings.lake_bucket, base)).toPandas()
    return frame.drop(columns=["date"])


@pytest.mark.services
def test_an_incremental_run_equals_the_full_refresh(spark, lake_settings, s3_client) -> None:
    bars = [
        # 2020-03-16 has 71 rows before it: the 60-day z-score and SMA 30 are full.
        *daily_bars("apple.csv", "AAPL", "2019-12-01", "2020-03-20"),
        *daily_bars("netflix.csv", "NFLX", "2019-12-01", "2020-03-20"),
        *fb_minute_bars(),
    ]
    put_raw_historical(s3_client, lake_settings.lake_bucket, bars)
    run_daily(lake_settings, full_refresh=True, spark=spark)
    full = run_features(lake_settings, full_refresh=True, spark=spark)
    assert full.intraday_rows == len(fb_minute_bars())
    assert len(full.daily_dates_written) == 81  # 76 trading days and FB's 5 minute sessions
    daily = _features(spark, lake_settings, lake.PROCESSED_FEATURES_DAILY)
    intraday = _features(spark, lake_settings, lake.PROCESSED_FEATURES_INTRADAY)
    # Remove one date of each, then compute just that date.
    day, session = date(2020, 3, 16), date(2019, 5, 22)
    for base, when in (
        (lake.PROCESSED_FEATURES_DAILY, day),
        (lake.PROCESSED_FEATURES_INTRADAY, session),
    ):
        prefix = lake.processed_date_prefix(base, when)
        for item in s3_client.list_objects_v2(Bucket=lake_settings.lake_bucket, Prefix=prefix)[
            "Contents"
        ]:
            s3_client.delete_object(Bucket=lake_settings.lake_bucket, Key=item["Key"])
    for when in (day, session):
        one = run_features(lake_settings, when, when + timedelta(days=1), spark=spark)
        assert one.daily_dates_written == [when.isoformat()]  # FB's minutes make a daily row
        assert one.intraday_dates_written == ([when.isoformat()] if when == session else [])
    again = _features(spark, lake_settings, lake.PROCESSED_FEATURES_DAILY)
    pd.testing.assert_frame_equal(
        again.sort_values(["symbol", "trade_date"]).reset_index(drop=True),
        daily.sort_values(["symbol", "trade_date"]).reset_index(drop=True),
    )
    row = again[(again["symbol"] == "AAPL") & (again["trade_date"] == day)].iloc[0]
    assert not math.isnan(row["return_zscore_60d"]) and not math.isnan(row["sma_30"])
    minutes = _features(spark, lake_settings, lake.PROCESSED_FEATURES_INTRADAY)
    pd.testing.assert_frame_equal(
        minutes.sort_values("bar_ts").reset_index(drop=True),
        intraday.sort_values("bar_ts").reset_index(drop=True),
    )
