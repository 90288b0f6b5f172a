"""Benchmark: daily metrics over generated 1-minute bars.

Measures, in one run on the same data:
  1. the real job (`run_daily --full-refresh`) on Spark, reading raw JSON lines from
     the lake over s3a and writing processed parquet back (end to end);
  2. Spark computing the same metrics (same functions) from a local parquet copy;
  3. DuckDB computing the same metrics in SQL from the same local parquet copy.

By default the lake is a private S3 server started here (SeaweedFS; --s3-server moto for
moto), so the shared stack's S3 server stays light for everyone else; --use-stack uses
the configured endpoint.

    python bench/bench_spark_daily.py --bars 10000000 --symbols 100
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.private_stack import private_s3  # noqa: E402
from stocklake import lake  # noqa: E402
from stocklake.s3 import s3_client as make_s3_client  # noqa: E402
from stocklake.schemas import HISTORICAL_BAR_COLUMNS, arrow_schema  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402

BARS_PER_DAY = 390  # 09:30-16:00 New York = 13:30-20:00 UTC in summer time


def trading_days(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def day_bars(day: date, symbols: list[str], rng: np.random.Generator, offset: int) -> pa.Table:
    """One trading day of 1-minute bars for every symbol, as the raw zone holds them."""
    n_sym = len(symbols)
    start = np.datetime64(f"{day.isoformat()}T13:30:00", "us")
    minutes = start + np.arange(BARS_PER_DAY, dtype="int64") * np.timedelta64(60, "s")
    ts = np.tile(minutes, n_sym)
    base = np.repeat(rng.uniform(20, 500, n_sym), BARS_PER_DAY)
    steps = rng.normal(0, 0.0008, n_sym * BARS_PER_DAY).reshape(n_sym, BARS_PER_DAY)
    close = base * np.exp(np.cumsum(steps, axis=1)).ravel()
    open_ = close * np.exp(rng.normal(0, 0.0004, close.size))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, close.size))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, close.size))
    rows = close.size
    columns = {
        "schema_version": pa.array(np.ones(rows, "int32")),
        "symbol": pa.array(np.repeat(symbols, BARS_PER_DAY)),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "interval": pa.array(["1m"] * rows),
        "open": pa.array(np.round(open_, 4)),
        "high": pa.array(np.round(high, 4)),
        "low": pa.array(np.round(low, 4)),
        "close": pa.array(np.round(close, 4)),
        "adj_close": pa.nulls(rows, pa.float64()),
        "volume": pa.array(rng.integers(100, 50_000, rows)),
        "source": pa.array(["synthetic"] * rows),
        "ingested_at": pa.array(
            np.full(rows, np.datetime64("2024-01-01T00:00:00", "us")), pa.timestamp("us", tz="UTC")
        ),
        "_topic": pa.array(["bench"] * rows),
        "_partition": pa.array(np.zeros(rows, "int32")),
        "_offset": pa.array(np.arange(offset, offset + rows, dtype="int64")),
        "_landed_at": pa.array(["2024-01-01T00:00:00.000Z"] * rows),
    }
    return pa.table(columns, schema=arrow_schema(HISTORICAL_BAR_COLUMNS))


def to_jsonl(con, parquet_file: Path, jsonl_file: Path) -> None:
    """The raw zone's wire form: ISO-8601 UTC strings with milliseconds and a Z."""
    ts_format = "%Y-%m-%dT%H:%M:%S.%g"
    con.execute(
        f"""COPY (SELECT * REPLACE (
                strftime(ts, '{ts_format}') || 'Z' AS ts,
                strftime(ingested_at, '{ts_format}') || 'Z' AS ingested_at)
            FROM read_parquet('{parquet_file}')) TO '{jsonl_file}' (FORMAT JSON)"""
    )


DUCKDB_METRICS = """
COPY (
WITH bars AS (
    SELECT *, CAST(ts AS DATE) AS trade_date,
        CASE interval WHEN '1d' THEN 0 WHEN '1h' THEN 1 WHEN '5m' THEN 2 WHEN '1m' THEN 3 END
            AS interval_rank
    FROM read_parquet('{source}/*.parquet')
),
latest AS (
    SELECT * FROM bars
    QUALIFY row_number() OVER (PARTITION BY symbol, interval, ts
        ORDER BY ingested_at DESC, _offset DESC, _partition DESC) = 1
),
usable AS (
    SELECT * FROM latest
    QUALIFY interval_rank = max(interval_rank) OVER (PARTITION BY symbol, trade_date)
),
per_day AS (
    SELECT symbol, trade_date, any_value(interval) AS interval,
        arg_min(open, ts) AS daily_open, max(high) AS daily_high, min(low) AS daily_low,
        arg_max(close, ts) AS daily_close, sum(volume)::BIGINT AS daily_volume,
        count(*)::INT AS bar_count, sum((high + low + close) / 3 * volume) AS price_volume,
        min(ts) AS first_bar_ts, max(ts) AS last_bar_ts
    FROM usable GROUP BY symbol, trade_date
),
with_prev AS (
    SELECT *, CASE WHEN trade_date - lag(trade_date) OVER w <= {lookback}
        THEN lag(daily_close) OVER w END AS prev_close
    FROM per_day WINDOW w AS (PARTITION BY symbol ORDER BY trade_date)
)
SELECT symbol, trade_date, interval, daily_open, daily_high, daily_low, daily_close,
    daily_volume, (daily_close - daily_open) / daily_open * 100 AS daily_change_pct,
    bar_count, CASE WHEN daily_volume > 0 THEN price_volume / daily_volume END AS vwap,
    prev_close, (daily_close - prev_close) / prev_close * 100 AS return_pct,
    (daily_high - daily_low) / daily_open * 100 AS range_pct, first_bar_ts, last_bar_ts
FROM with_prev
) TO '{target}' (FORMAT PARQUET)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_client(settings: Settings):
    return make_s3_client(settings)


def empty_bucket(settings: Settings) -> None:
    """Remove the bench's bucket from a shared endpoint."""
    client = s3_client(settings)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.lake_bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=settings.lake_bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=settings.lake_bucket)
    except client.exceptions.NoSuchBucket:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--use-stack", action="store_true", help="use the configured S3 endpoint")
    parser.add_argument("--s3-server", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import duckdb

    from spark_jobs.daily import daily_metrics, mark_bars, run_daily, usable_bars
    from spark_jobs.session import build_spark

    symbols = [f"S{n:04d}" for n in range(args.symbols)]
    n_days = max(1, round(args.bars / (len(symbols) * BARS_PER_DAY)))
    days = trading_days(date(2023, 1, 2), n_days)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-daily-"))
    parquet_dir, jsonl_dir = work / "parquet", work / "jsonl"
    parquet_dir.mkdir(parents=True, exist_ok=True)
    jsonl_dir.mkdir(parents=True, exist_ok=True)

    resources = ExitStack()
    settings = get_settings()
    if not args.use_stack:
        settings = resources.enter_context(private_s3(args.s3_server))
    bucket = f"bench-daily-{int(time.time())}"
    settings = settings.model_copy(update={"lake_bucket": bucket, "spark_master": args.master})
    figures: dict = {"bars": 0, "days": len(days), "symbols": len(symbols), "master": args.master}
    try:
        began = time.monotonic()
        con = duckdb.connect()
        con.execute("SET TimeZone='UTC'")
        rng = np.random.default_rng(42)
        offset = 0
        for day in days:
            table = day_bars(day, symbols, rng, offset)
            offset += table.num_rows
            pq.write_table(table, parquet_dir / f"{day.isoformat()}.parquet")
            to_jsonl(con, parquet_dir / f"{day.isoformat()}.parquet", jsonl_dir / f"{day}.jsonl")
        figures["bars"] = offset
        figures["generate_seconds"] = round(time.monotonic() - began, 1)
        figures["jsonl_bytes"] = sum(p.stat().st_size for p in jsonl_dir.iterdir())
        figures["parquet_bytes"] = sum(p.stat().st_size for p in parquet_dir.iterdir())

        client = s3_client(settings)
        client.create_bucket(Bucket=bucket)
        began = time.monotonic()
        first = 0

        def upload(day: date, first_offset: int, rows: int) -> None:
            name = lake.OffsetRange("bench", 0, first_offset, first_offset + rows - 1).object_name()
            client.upload_file(
                str(jsonl_dir / f"{day}.jsonl"), bucket, lake.raw_historical_prefix(day) + name
            )

        rows_per_day = len(symbols) * BARS_PER_DAY
        with ThreadPoolExecutor(4) as pool:
            uploads = []
            for day in days:
                uploads.append(pool.submit(upload, day, first, rows_per_day))
                first += rows_per_day
            for done in uploads:
                done.result()
        figures["upload_seconds"] = round(time.monotonic() - began, 1)

        spark = build_spark(settings, "bench-daily", {"spark.driver.memory": args.driver_memory})
        # 1. The real job over s3a (raw JSON lines in, processed parquet out).
        began = time.monotonic()
        summary = run_daily(settings, full_refresh=True, spark=spark)
        s3a_seconds = time.monotonic() - began
        assert summary.input_rows == offset, summary
        figures["spark_s3a_jsonl_seconds"] = round(s3a_seconds, 2)
        figures["spark_s3a_rows_per_s"] = round(offset / s3a_seconds)
        figures["output_rows"] = summary.output_rows

        # 2. Spark, same functions, local parquet in and out.
        spark_out = work / "spark_out"
        began = time.monotonic()
        bars = spark.read.parquet(str(parquet_dir))
        metrics = daily_metrics(usable_bars(mark_bars(bars)))
        metrics.write.mode("overwrite").parquet(str(spark_out))
        spark_local = time.monotonic() - began
        figures["spark_local_parquet_seconds"] = round(spark_local, 2)
        figures["spark_local_rows_per_s"] = round(offset / spark_local)

        # 3. DuckDB, same metrics in SQL, same local parquet in and out.
        duck_out = work / "duckdb_out.parquet"
        began = time.monotonic()
        con.execute(DUCKDB_METRICS.format(source=parquet_dir, target=duck_out, lookback=10))
        duck = time.monotonic() - began
        figures["duckdb_local_parquet_seconds"] = round(duck, 2)
        figures["duckdb_local_rows_per_s"] = round(offset / duck)
        figures["duckdb_threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]

        # The three agree (so the timings compare the same work).
        check = con.execute(
            f"""SELECT count(*), max(abs(d.vwap - s.vwap) / s.vwap),
                       max(abs(coalesce(d.return_pct, 0) - coalesce(s.return_pct, 0)))
                FROM read_parquet('{duck_out}') d
                JOIN read_parquet('{spark_out}/*.parquet') s USING (symbol, trade_date)"""
        ).fetchone()
        figures["rows_compared"] = check[0]
        figures["max_vwap_rel_diff"] = check[1]
        figures["max_return_abs_diff"] = check[2]
        assert check[0] == summary.output_rows, check

        figures["ratio_spark_s3a_over_duckdb"] = round(s3a_seconds / duck, 2)
        figures["ratio_spark_local_over_duckdb"] = round(spark_local / duck, 2)
        figures["ratio_spark_s3a_over_spark_local"] = round(s3a_seconds / spark_local, 2)
        spark.stop()
    finally:
        if args.use_stack:
            empty_bucket(settings)
        resources.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
