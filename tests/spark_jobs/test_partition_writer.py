"""The rename-free partition writer: one object per date, the contract's file, clean-up."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs.partition_writer import Target, _runs_by_date, write_partitions
from stocklake import lake
from stocklake.schemas import DAILY_METRICS_COLUMNS, DAILY_METRICS_KEY, arrow_schema, spark_ddl

pytestmark = [pytest.mark.services, pytest.mark.spark]

DAYS = (date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6))


def _metrics(spark, days: tuple[date, ...], close: float = 10.0):
    rows = []
    for day in days:
        for n, symbol in enumerate(("MSFT", "AAPL", "TSLA")):  # not in key order
            ts = datetime(day.year, day.month, day.day, 14, 30, tzinfo=UTC)
            price = close + n
            rows.append(
                (symbol, day, "1d", price, price, price, price, 1000 + n, 0.0, 1, price)
                + (None, None, 0.0, ts, ts)
            )
    return spark.createDataFrame(rows, spark_ddl(DAILY_METRICS_COLUMNS))


def _listing(client, bucket: str) -> dict[str, str]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=lake.PROCESSED_HISTORICAL + "/"
    )
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def test_runs_by_date_split_batches_at_every_change() -> None:
    batches = [
        pa.record_batch({"date": ["a", "a", "b"], "n": [1, 2, 3]}),
        pa.record_batch({"date": ["b", "c"], "n": [4, 5]}),
        pa.record_batch({"date": pa.array([], pa.string()), "n": pa.array([], pa.int64())}),
        pa.record_batch({"date": ["c"], "n": [6]}),
    ]
    runs = [
        (day, [n for piece in pieces for n in piece["n"].to_pylist()])
        for day, pieces in _runs_by_date(iter(batches))
    ]
    assert runs == [("a", [1, 2]), ("b", [3, 4]), ("c", [5, 6])]


def test_one_object_per_date_contract_file_rerun_and_full_refresh(
    spark, lake_settings, s3_client
) -> None:
    bucket, target = (
        lake_settings.lake_bucket,
        Target(lake_settings.lake_bucket, lake.PROCESSED_HISTORICAL),
    )
    old_part = target.date_folder(DAYS[0].isoformat()) + "part-00003-abc.c000.snappy.parquet"
    gone_day = target.date_folder("2001-01-02") + "part-00000-abc.c000.snappy.parquet"
    junk = f"{target.base}/_temporary/0/_temporary/x.parquet"
    for key in (old_part, gone_day, junk):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"old")

    def write(days: tuple[date, ...], full_refresh: bool, close: float = 10.0):
        return write_partitions(
            _metrics(spark, days, close),
            lake_settings,
            target,
            DAILY_METRICS_COLUMNS,
            DAILY_METRICS_KEY,
            full_refresh=full_refresh,
        )

    written = write(DAYS, full_refresh=False)
    assert written.dates == [day.isoformat() for day in DAYS] and written.rows == 9
    first = _listing(s3_client, bucket)
    # The old part file of a written date is gone; other dates and junk are untouched.
    assert set(first) == {target.object_key(d.isoformat()) for d in DAYS} | {gone_day, junk}

    data = s3_client.get_object(Bucket=bucket, Key=target.object_key("2024-03-05"))["Body"].read()
    table = pq.read_table(io.BytesIO(data))
    assert table.schema.remove_metadata() == arrow_schema(DAILY_METRICS_COLUMNS)
    assert table["symbol"].to_pylist() == ["AAPL", "MSFT", "TSLA"]
    assert set(table["trade_date"].to_pylist()) == {date(2024, 3, 5)}
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.row_group(0).column(0).compression == "SNAPPY"

    # Same input: the same objects, byte for byte (an unchanged partition is not reloaded).
    write(DAYS, full_refresh=False)
    assert _listing(s3_client, bucket) == first

    # A full refresh keeps exactly the dates it wrote, with their new contents.
    written = write(DAYS[1:], full_refresh=True, close=20.0)
    after = _listing(s3_client, bucket)
    assert set(after) == {target.object_key(d.isoformat()) for d in DAYS[1:]}
    assert written.deleted == 3
    assert all(after[key] != first[key] for key in after)
    # Spark reads the dataset back with `date` from the path only.
    frame = spark.read.parquet(lake.s3a_uri(bucket, target.base)).toPandas()
    assert list(frame.columns) == [name for name, _ in DAILY_METRICS_COLUMNS] + ["date"]
    assert len(frame) == 6 and set(frame["daily_open"]) == {20.0, 21.0, 22.0}
