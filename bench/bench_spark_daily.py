"""Benchmark: daily metrics over generated 1-minute bars, at three sizes.

Measures at each size, in one run on the same data (one Spark session, same cores):
  1. s3a_job: the real job (`run_daily --full-refresh`) reading raw JSON lines from the
     lake over s3a and writing processed parquet back (end to end);
  2. spark_local: Spark computing the same metrics (same functions) from a local
     parquet copy to local parquet;
  3. duckdb: DuckDB computing the same metrics in SQL from the same parquet copy;
and the Spark driver's peak RSS (the java child process, sampled) against the driver
memory set. At the largest size it also splits the job's time (listing, JSON parse,
the rest) and runs the same job over a typed Parquet raw zone (a prototype here only:
the landing writes JSON lines) to show what the parse costs.

By default the lake is a private SeaweedFS started here (--s3-server moto for moto), so
the shared stack's S3 server stays light for everyone else. Figures go to
bench/results/bench_spark_daily.json (bench/results.py).

    python bench/bench_spark_daily.py --sizes 1000000,3000000,10000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import per_record_us, save  # noqa: E402
from infra.private_stack import private_s3  # noqa: E402
from stocklake import lake  # noqa: E402
from stocklake.s3 import s3_client as make_s3_client  # noqa: E402
from stocklake.schemas import HISTORICAL_BAR_COLUMNS, arrow_schema  # noqa: E402
from stocklake.settings import Settings  # noqa: E402

BARS_PER_DAY = 390  # 09:30-16:00 New York = 13:30-20:00 UTC in summer time
# Default sizes, chosen so the whole script stays within about 8 minutes on 2 cores.
DEFAULT_SIZES = "1000000,3000000,10000000"
DEFAULT_BREAKDOWN_SIZE = 3_000_000


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


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(float(part)) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError(f"--sizes wants positive bar counts, not {text!r}")
    return sizes


def size_label(records: int) -> str:
    return f"{records / 1e6:g}M bars" if records >= 1e6 else f"{records / 1e3:g}k bars"


def memory_mb(setting: str) -> float:
    """A JVM memory setting ('4g', '512m') in MB."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    text = setting.strip().lower().rstrip("b")
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text) / 2**20


class JvmRss:
    """Samples the resident memory of the java child processes (the Spark driver)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        import psutil

        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                if "java" in child.name():
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak_mb = max(self.peak_mb, self._sample())

    def reset(self) -> float:
        """The peak since the last reset (the current RSS becomes the new floor)."""
        peak, self.peak_mb = self.peak_mb, self._sample()
        return round(max(peak, self.peak_mb), 1)

    def __enter__(self) -> JvmRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def timed(seconds: dict[str, float], name: str):
    began = time.monotonic()
    yield
    seconds[name] = round(time.monotonic() - began, 2)


def generate(work: Path, records: int, n_symbols: int) -> tuple[Path, Path, list[date]]:
    """`records` 1-minute bars (whole days of every symbol) as parquet and as JSON lines."""
    import duckdb

    symbols = [f"S{n:04d}" for n in range(n_symbols)]
    days = trading_days(date(2023, 1, 2), max(1, round(records / (n_symbols * BARS_PER_DAY))))
    parquet_dir, jsonl_dir = work / "parquet", work / "jsonl"
    parquet_dir.mkdir(parents=True, exist_ok=True)
    jsonl_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    rng = np.random.default_rng(42)
    offset = 0
    for day in days:
        table = day_bars(day, symbols, rng, offset)
        offset += table.num_rows
        pq.write_table(table, parquet_dir / f"{day}.parquet")
        to_jsonl(con, parquet_dir / f"{day}.parquet", jsonl_dir / f"{day}.jsonl")
    return parquet_dir, jsonl_dir, days


def upload(settings: Settings, source: Path, days: list[date], rows_per_day: int, ext: str) -> None:
    """Each day's file into its raw/historical date folder, named as the landing names it."""
    client = make_s3_client(settings)

    def put(day: date, first: int) -> None:
        name = lake.OffsetRange("bench", 0, first, first + rows_per_day - 1).object_name()
        key = lake.raw_historical_prefix(day) + name.rsplit(".", 1)[0] + f".{ext}"
        client.upload_file(str(source / f"{day}.{ext}"), settings.lake_bucket, key)

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(put, day, n * rows_per_day) for n, day in enumerate(days)]:
            done.result()


def make_bucket(settings: Settings, name: str) -> Settings:
    make_s3_client(settings).create_bucket(Bucket=name)
    return settings.model_copy(update={"lake_bucket": name})


def s3a_job(spark, settings: Settings, records: int) -> float:
    """The real job end to end: list, read the JSON lines, compute, write over s3a."""
    from spark_jobs.daily import run_daily

    began = time.monotonic()
    summary = run_daily(settings, full_refresh=True, spark=spark)
    seconds = time.monotonic() - began
    assert summary.input_rows == records, summary
    return seconds


def spark_local(spark, parquet_dir: Path, out: Path) -> float:
    """The same functions on the local parquet copy, written to local parquet."""
    from spark_jobs.daily import daily_metrics, mark_bars, usable_bars

    began = time.monotonic()
    bars = spark.read.parquet(str(parquet_dir))
    daily_metrics(usable_bars(mark_bars(bars))).write.mode("overwrite").parquet(str(out))
    return time.monotonic() - began


def duckdb_local(parquet_dir: Path, out: Path, threads: int) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET TimeZone='UTC'; SET threads={threads}")
    began = time.monotonic()
    con.execute(DUCKDB_METRICS.format(source=parquet_dir, target=out, lookback=10))
    return time.monotonic() - began


def agreement(spark_out: Path, duck_out: Path) -> dict[str, Any]:
    """Spark's and DuckDB's rows agree (so the timings compare the same work)."""
    import duckdb

    rows, vwap, ret, close = (
        duckdb.connect()
        .execute(
            f"""SELECT count(*), max(abs(d.vwap - s.vwap) / s.vwap),
                   max(abs(coalesce(d.return_pct, 0) - coalesce(s.return_pct, 0))),
                   max(abs(d.daily_close - s.daily_close))
            FROM read_parquet('{duck_out}') d
            JOIN read_parquet('{spark_out}/*.parquet') s USING (symbol, trade_date)"""
        )
        .fetchone()
    )
    total = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{duck_out}')").fetchone()
    assert rows == total[0] and close == 0 and vwap < 1e-9, (rows, total, vwap, close)
    return {"rows": rows, "max_vwap_rel_diff": vwap, "max_return_abs_diff": ret}


def s3a_breakdown(spark, settings: Settings, records: int) -> dict[str, float]:
    """Where the job's time goes: listing, the JSON parse (every column, as the job reads
    it), and the rest (compute, counts, write) as the job's total minus those."""
    from spark_jobs.daily import raw_historical_dates, read_raw_bars

    seconds: dict[str, float] = {}
    with timed(seconds, "list"):
        uris = list(raw_historical_dates(spark, settings).values())
    with timed(seconds, "json_parse"):
        read_raw_bars(spark, uris).write.format("noop").mode("overwrite").save()
    seconds["job"] = round(s3a_job(spark, settings, records), 2)
    seconds["compute_and_write"] = round(
        seconds["job"] - seconds["list"] - seconds["json_parse"], 2
    )
    return seconds


def parquet_raw_job(spark, settings: Settings, records: int) -> dict[str, float]:
    """Prototype (bench only): the same job with a typed Parquet raw zone (same folders,
    one .parquet object per day instead of JSON lines). Only the read is swapped."""
    from pyspark.sql import functions as F

    import spark_jobs.daily as daily
    from stocklake.schemas import spark_ddl

    def read_parquet_bars(spark, uris: list[str]):
        return (
            spark.read.schema(spark_ddl(HISTORICAL_BAR_COLUMNS))
            .parquet(*uris)
            .withColumn(daily.SOURCE_FILE, F.input_file_name())
        )

    json_reader, daily.read_raw_bars = daily.read_raw_bars, read_parquet_bars
    seconds: dict[str, float] = {}
    try:
        uris = list(daily.raw_historical_dates(spark, settings).values())
        with timed(seconds, "parquet_parse"):
            read_parquet_bars(spark, uris).write.format("noop").mode("overwrite").save()
        seconds["job"] = round(s3a_job(spark, settings, records), 2)
    finally:
        daily.read_raw_bars = json_reader
    return seconds


def run_size(spark, settings: Settings, args, records: int, rss: JvmRss, deep: bool) -> dict:
    """One size: generate, upload, then the three timings (and the breakdown if `deep`)."""
    work = Path(tempfile.mkdtemp(prefix="bench-daily-", dir=args.workdir))
    try:
        parquet_dir, jsonl_dir, days = generate(work, records, args.symbols)
        records = len(days) * args.symbols * BARS_PER_DAY
        lake_settings = make_bucket(settings, f"bench-daily-{records}-{int(time.time())}")
        upload(lake_settings, jsonl_dir, days, args.symbols * BARS_PER_DAY, "jsonl")
        rss.reset()
        seconds = {"s3a_job": round(s3a_job(spark, lake_settings, records), 2)}
        s3a_rss = rss.reset()
        seconds["spark_local"] = round(spark_local(spark, parquet_dir, work / "spark_out"), 2)
        local_rss = rss.reset()
        duck_out = work / "duckdb.parquet"
        seconds["duckdb"] = round(duckdb_local(parquet_dir, duck_out, args.cores), 2)
        row: dict[str, Any] = {
            "label": size_label(records),
            "records": records,
            "seconds": seconds,
            "us_per_record": {k: per_record_us(v, records) for k, v in seconds.items()},
            "driver_peak_rss_mb": max(s3a_rss, local_rss),
            "agreement": agreement(work / "spark_out", duck_out),
            "jsonl_mb": round(sum(p.stat().st_size for p in jsonl_dir.iterdir()) / 2**20, 1),
            "parquet_mb": round(sum(p.stat().st_size for p in parquet_dir.iterdir()) / 2**20, 1),
        }
        if deep:
            row["s3a_breakdown_seconds"] = s3a_breakdown(spark, lake_settings, records)
            proto = make_bucket(settings, f"bench-daily-pq-{records}-{int(time.time())}")
            upload(proto, parquet_dir, days, args.symbols * BARS_PER_DAY, "parquet")
            row["parquet_raw_prototype_seconds"] = parquet_raw_job(spark, proto, records)
            row["driver_peak_rss_mb"] = max(row["driver_peak_rss_mb"], rss.reset())
        print(json.dumps(row), flush=True)
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarize(sizes: list[dict], args) -> dict:
    """The figures file: the sizes, and the goals' ratios at the largest size."""
    largest = sizes[-1]
    seconds = largest["seconds"]
    peak = max(size["driver_peak_rss_mb"] for size in sizes)
    figures: dict[str, Any] = {
        "master": args.master,
        "driver_memory": args.driver_memory,
        "shuffle_partitions": args.shuffle_partitions,
        "symbols": args.symbols,
        "ratios": {
            "s3a_over_local": round(seconds["s3a_job"] / seconds["spark_local"], 2),
            "local_over_duckdb": round(seconds["spark_local"] / seconds["duckdb"], 2),
            "driver_rss_over_setting": round(
                largest["driver_peak_rss_mb"] / memory_mb(args.driver_memory), 2
            ),
        },
        "peak_rss_mb": {"driver": peak},
        "sizes": sizes,
    }
    for size in sizes:
        if "parquet_raw_prototype_seconds" in size:
            jobs = size["seconds"]["s3a_job"], size["parquet_raw_prototype_seconds"]["job"]
            figures["ratios"][f"json_raw_over_parquet_raw_job_at_{size['label']}"] = round(
                jobs[0] / jobs[1], 2
            )
            figures["ratios"][f"parquet_raw_job_over_local_at_{size['label']}"] = round(
                jobs[1] / size["seconds"]["spark_local"], 2
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES))
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] and DuckDB threads")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=None)
    parser.add_argument(
        "--breakdown-size",
        type=int,
        default=DEFAULT_BREAKDOWN_SIZE,
        help="the size (one of --sizes) at which the s3a time is split and the Parquet raw "
        "zone prototype runs; 0 to skip",
    )
    parser.add_argument("--warmup-bars", type=int, default=BARS_PER_DAY * 100)
    parser.add_argument("--s3-server", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-save", action="store_true", help="print, do not save the figures")
    args = parser.parse_args()
    args.master = f"local[{args.cores}]"
    # Python workers (if a step needs any) run this interpreter, with its packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from spark_jobs.session import build_spark

    began = time.monotonic()
    with private_s3(args.s3_server) as settings, JvmRss() as rss:
        update: dict[str, Any] = {"spark_master": args.master}
        if args.shuffle_partitions:
            update["spark_shuffle_partitions"] = args.shuffle_partitions
        settings = settings.model_copy(update=update)
        args.shuffle_partitions = settings.spark_shuffle_partitions
        spark = build_spark(settings, "bench-daily", {"spark.driver.memory": args.driver_memory})
        try:
            if args.warmup_bars:  # JIT, class loading, s3a connections: not in the figures
                run_size(spark, settings, args, args.warmup_bars, rss, deep=False)
            sizes = [
                run_size(spark, settings, args, records, rss, records == args.breakdown_size)
                for records in args.sizes
            ]
        finally:
            spark.stop()
    figures = summarize(sizes, args)
    figures["seconds"] = {"bench_total": round(time.monotonic() - began, 1)}
    print(json.dumps(figures, indent=2, default=str))
    if not args.no_save:
        save("bench_spark_daily", figures)


if __name__ == "__main__":
    main()
