"""Spark on the local S3 endpoint: partitioned parquet through s3a, read back unchanged."""

from __future__ import annotations

import uuid

import pytest

from stocklake import lake
from stocklake.s3 import s3_client
from stocklake.settings import Settings

pytestmark = [pytest.mark.services, pytest.mark.spark]


def test_partitioned_parquet_roundtrip_on_s3a(stack: Settings) -> None:
    from pyspark.sql import Row

    from spark_jobs.session import build_spark

    spark = build_spark(stack, app_name="stocklake-s3a-check")
    prefix = f"checkpoints/s3a-check-{uuid.uuid4().hex[:8]}/"
    target = lake.s3a_uri(stack.lake_bucket, prefix)
    rows = [
        Row(symbol=symbol, date=f"2020-01-0{day}", close=100.0 + day + i / 10)
        for day in (2, 3, 6)
        for i, symbol in enumerate(("AAPL", "MSFT"))
    ]
    s3 = s3_client(stack)
    try:
        frame = spark.createDataFrame(rows)
        frame.write.mode("overwrite").partitionBy("date").parquet(target)

        back = spark.read.parquet(target)
        got = sorted((r.symbol, str(r.date), r.close) for r in back.collect())
        want = sorted((r.symbol, r.date, r.close) for r in rows)
        assert got == want

        # The partition folders are real keys on the S3 endpoint.
        keys = _keys(s3, stack.lake_bucket, prefix)
        assert {k.split("/")[2] for k in keys if k.endswith(".parquet")} == {
            "date=2020-01-02",
            "date=2020-01-03",
            "date=2020-01-06",
        }
    finally:
        # The shared bucket keeps nothing of this test, whatever failed above.
        for key in _keys(s3, stack.lake_bucket, prefix):
            s3.delete_object(Bucket=stack.lake_bucket, Key=key)
    assert _keys(s3, stack.lake_bucket, prefix) == []


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
