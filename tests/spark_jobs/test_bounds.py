"""Every edge value the landing accepts goes through both Spark jobs and the loader: no
failure, no overflow, no inf or NaN; an aggregate that would overflow is held back."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from loaders.source import list_source_partitions, read_partitions
from loaders.tables import DAILY_METRICS, REALTIME_WINDOW_METRICS
from spark_jobs.contract import HOLD_REASON, with_hold_reason
from spark_jobs.daily import bars_with_trade_date, daily_metrics, run_daily
from spark_jobs.stream import run_stream, window_metrics
from stocklake.s3 import lake_filesystem
from stocklake.schemas import (
    EARLIEST_TIME,
    INT64_MAX,
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
    HistoricalBar,
    RealtimeTick,
)
from streaming.validation import Accepted, RecordGate
from tests.spark_jobs.rawdata import INGESTED, put_raw_historical, put_raw_realtime

pytestmark = [pytest.mark.services, pytest.mark.spark]

SESSION = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def _bar(symbol: str, ts: datetime, interval: str, low: float, high: float, **prices: float):
    return HistoricalBar(
        symbol=symbol,
        ts=ts,
        interval=interval,  # type: ignore[arg-type]
        open=prices.get("open", low),
        high=high,
        low=low,
        close=prices.get("close", high),
        volume=MAX_VOLUME,
        source="csv",
        ingested_at=INGESTED,
    )


# The widest bars and ticks the contract allows: max volume, max and min price, earliest time.
EDGE_BARS = [
    _bar("EARLY", EARLIEST_TIME, "1d", MIN_PRICE, MAX_PRICE),
    _bar("EARLY", EARLIEST_TIME + timedelta(days=1), "1d", MIN_PRICE, MAX_PRICE, close=MIN_PRICE),
    *[_bar("WIDE", SESSION + timedelta(minutes=n), "1m", MIN_PRICE, MAX_PRICE) for n in range(390)],
]
EDGE_TICKS = [
    RealtimeTick(
        symbol="WIDE",
        event_time=SESSION + timedelta(seconds=20 * n),
        price=MAX_PRICE if n % 2 else MIN_PRICE,
        size=MAX_VOLUME,
        sequence=INT64_MAX - n,
        source="simulator",
    )
    for n in range(400)
]


def _accepted_by_landing(records) -> None:
    now = SESSION + timedelta(days=1)
    for record in records:
        kind = "historical" if isinstance(record, HistoricalBar) else "realtime"
        verdict = RecordGate(kind, now=now, max_future=timedelta(0)).check(record.to_json())
        assert isinstance(verdict, Accepted), verdict


def _all_finite(frame: pd.DataFrame) -> None:
    for name in frame.select_dtypes("float").columns:
        values = frame[name].dropna()
        assert all(math.isfinite(value) for value in values), name


def test_a_volume_sum_beyond_int64_is_held_back_not_wrapped(spark) -> None:
    at = datetime(2024, 3, 4, 15, tzinfo=UTC)
    bars = spark.createDataFrame(
        [("BIG", at + timedelta(minutes=n), "1m", 1.0, 1.0, 1.0, 1.0, 2**62) for n in range(2)],
        "symbol string, ts timestamp, interval string, open double, high double, low double, "
        "close double, volume bigint",
    )
    rows = daily_metrics(bars_with_trade_date(bars)).collect()
    assert [row[HOLD_REASON] for row in rows] == ["daily_volume_overflow"]
    assert rows[0]["daily_volume"] is None


def test_a_window_volume_beyond_int64_is_held_back_not_wrapped(spark) -> None:
    at = datetime(2024, 3, 4, 15, tzinfo=UTC)
    ticks = spark.createDataFrame(
        [("BIG", at + timedelta(seconds=n), n, 1.0, 2**62) for n in range(2)],
        "symbol string, event_time timestamp, sequence bigint, price double, size bigint",
    )
    rows = window_metrics(ticks, "15m", 300, 600).collect()
    assert {row[HOLD_REASON] for row in rows} == {"total_volume_overflow"}
    assert {row["total_volume"] for row in rows} == {None}


def test_edge_values_pass_landing_both_jobs_and_the_loader(spark, lake_settings, s3_client):
    _accepted_by_landing(EDGE_BARS)
    _accepted_by_landing(EDGE_TICKS)
    bucket = lake_settings.lake_bucket
    put_raw_historical(s3_client, bucket, EDGE_BARS)
    put_raw_realtime(s3_client, bucket, EDGE_TICKS, ticks_per_file=100)

    daily = run_daily(lake_settings, full_refresh=True, spark=spark)
    assert daily.rows_held_back == []
    assert daily.output_rows == 3
    stream = run_stream(lake_settings, available_now=True, spark=spark)
    assert stream.output_rows > 0
    assert all(query.rows_held_back == 0 for query in stream.queries)

    fs = lake_filesystem(lake_settings)
    for table in (DAILY_METRICS, REALTIME_WINDOW_METRICS):
        partitions = list_source_partitions(fs, bucket, table)
        rows = read_partitions(fs, bucket, partitions, table).table.to_pandas()
        assert len(rows) > 0, table.name
        _all_finite(rows)
    wide = (
        read_partitions(
            fs, bucket, list_source_partitions(fs, bucket, DAILY_METRICS), DAILY_METRICS
        )
        .table.to_pandas()
        .set_index("symbol")
    )
    assert wide.loc["WIDE", "daily_volume"] == 390 * MAX_VOLUME


def test_a_non_finite_metric_is_held_back_with_its_column(spark) -> None:
    from pyspark.sql import functions as F

    metrics = spark.createDataFrame(
        [("A", float("inf"), 5), ("B", 1.0, 5), ("C", float("nan"), 5)],
        "symbol string, vwap double, daily_volume bigint",
    ).withColumn("daily_volume", F.col("daily_volume").cast("decimal(38,0)"))
    columns = (("symbol", "string"), ("vwap", "double"), ("daily_volume", "long"))
    rows = with_hold_reason(metrics, columns, "daily_volume").orderBy("symbol").collect()
    assert [row[HOLD_REASON] for row in rows] == ["non_finite_vwap", None, "non_finite_vwap"]


def test_raw_bars_beyond_the_bounds_are_counted_not_summed(spark, lake_settings, s3_client):
    # Landed before the contract had bounds: two volumes of 2^62 would sum to -2^63.
    day = datetime(2024, 3, 5, 15, tzinfo=UTC)
    big = [
        _bar("BIG", day + timedelta(minutes=n), "1m", 1.0, 1.0).model_copy(update={"volume": 2**62})
        for n in range(2)
    ]
    put_raw_historical(s3_client, lake_settings.lake_bucket, big, first_offset=50_000)
    summary = run_daily(
        lake_settings, day.date(), day.date() + timedelta(days=1), on_empty="skip", spark=spark
    )
    assert summary.out_of_bounds_bars == 2
    assert (summary.output_rows, summary.dates_skipped) == (0, ["2024-03-05"])
