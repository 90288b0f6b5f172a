"""Benchmark: 1,000,000 daily-metric rows into the local PostgreSQL through the loader.

    python bench/bench_load.py [--symbols 5000] [--days 200]

Writes the rows as processed parquet (one file per date) into a bucket of its own,
then in the same run measures:
  - reference: a raw binary COPY of the same rows (already in memory) into an empty
    UNLOGGED table with no key, and the same with text (CSV) COPY;
  - the loader (read from the lake, dedup, stage, MERGE, audit), each in a child
    process that reports its peak RSS: into an empty table, then with every row an
    update, then an unchanged re-load.
Needs the local stack (`stocklake up`); cleans up its bucket and schema.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import s3fs
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.postgres_roles import create_warehouse_schema  # noqa: E402
from loaders.tables import DAILY_METRICS  # noqa: E402
from stocklake import lake  # noqa: E402
from stocklake.s3 import lake_filesystem, s3_client  # noqa: E402
from stocklake.schemas import DAILY_METRICS_COLUMNS, arrow_schema  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402

# The child: one load, timed per phase, with its own peak RSS.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from loaders import load as load_module, postgres_backend
    from loaders.load import load_daily
    from stocklake.settings import load_settings

    phases = {}

    def timed(owner, name, label):
        real = getattr(owner, name)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(load_module, "read_partitions", "read")
    timed(load_module, "dedupe_latest", "dedup")
    timed(postgres_backend.PostgresWarehouse, "_stage", "stage (COPY)")
    timed(postgres_backend.PostgresWarehouse, "_merge", "merge")
    schema, bucket = sys.argv[1:3]
    summary = load_daily(
        load_settings(LAKE_BUCKET=bucket, WAREHOUSE="postgres"), full_refresh=True, schema=schema
    )
    # VmHWM is this process's own peak (ru_maxrss would include the parent's at fork).
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(json.dumps({
        "seconds": summary.seconds, "staged": summary.rows_staged,
        "inserted": summary.rows_inserted, "updated": summary.rows_updated,
        "rss_mb": peak_kb / 1024, "phases": phases,
    }))
    """
)


def daily_rows(symbols: int, days: int, seed: int, shift: float = 0.0) -> pa.Table:
    """symbols x days rows in the daily_metrics contract, trading-day-like values."""
    rng = np.random.default_rng(seed)
    n = symbols * days
    day = (np.datetime64("2023-01-02") + np.repeat(np.arange(days), symbols)).astype(
        "datetime64[D]"
    )
    price = rng.uniform(5, 900, n) + shift
    high, low = price * rng.uniform(1, 1.05, n), price * rng.uniform(0.95, 1, n)
    open_ = rng.uniform(low, high)
    start = day.astype("datetime64[us]") + np.timedelta64(14 * 3600 + 1800, "s")
    columns = {
        "symbol": pa.array(np.tile(np.array([f"S{i:05d}" for i in range(symbols)]), days)),
        "trade_date": pa.array(day, pa.date32()),
        "interval": pa.array(np.full(n, "1d")),
        "daily_open": open_,
        "daily_high": high,
        "daily_low": low,
        "daily_close": price,
        "daily_volume": rng.integers(0, 10**9, n),
        "daily_change_pct": (price - open_) / open_ * 100,
        "bar_count": pa.array(np.full(n, 390, dtype=np.int32)),
        "vwap": (high + low + price) / 3,
        "prev_close": price * rng.uniform(0.9, 1.1, n),
        "return_pct": rng.normal(0, 2, n),
        "range_pct": (high - low) / low * 100,
        "first_bar_ts": pa.array(start, pa.timestamp("us", tz="UTC")),
        "last_bar_ts": pa.array(
            start + np.timedelta64(389 * 60, "s"), pa.timestamp("us", tz="UTC")
        ),
    }
    return pa.table(columns, schema=arrow_schema(DAILY_METRICS_COLUMNS))


def write_partitions(fs: s3fs.S3FileSystem, bucket: str, rows: pa.Table) -> int:
    """One parquet file per trade_date, the layout the daily Spark job writes."""
    dates = rows.column("trade_date").to_numpy()
    files = 0
    for day in np.unique(dates):
        part = rows.filter(pa.array(dates == day))
        key = f"{lake.processed_historical_prefix(day.astype(object))}part-00000.parquet"
        with fs.open(f"{bucket}/{key}", "wb") as out:
            pq.write_table(part, out)
        files += 1
    return files


def raw_copy(settings: Settings, schema: str, rows: pa.Table, fmt: str) -> float:
    """Seconds for COPY of in-memory rows into a new empty UNLOGGED table with no key."""
    names = [name for name, _ in DAILY_METRICS_COLUMNS]
    table = sql.Identifier(schema, f"reference_{fmt}")
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(DAILY_METRICS.sql_type("postgres", n)))
        for n in names
    )
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(table, columns))
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT {})").format(
            table, sql.SQL("BINARY" if fmt == "binary" else "CSV")
        )
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            if fmt == "binary":
                encoder = ArrowToPostgresBinaryEncoder(rows.schema)
                copy.write(encoder.write_header())
                for batch in rows.to_batches(max_chunksize=100_000):
                    copy.write(encoder.write_batch(batch))
                copy.write(encoder.finish())
            else:
                for batch in rows.to_batches(max_chunksize=100_000):
                    buffer = io.BytesIO()
                    pacsv.write_csv(
                        pa.Table.from_batches([batch]),
                        buffer,
                        pacsv.WriteOptions(include_header=False),
                    )
                    copy.write(buffer.getvalue())
        seconds = time.perf_counter() - start
        (count,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        assert count == rows.num_rows, (count, rows.num_rows)
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    return seconds


def run_loader(schema: str, bucket: str) -> dict:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, schema, bucket],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise SystemExit(f"loader failed:\n{child.stderr}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=200)
    args = parser.parse_args()
    settings = get_settings()
    n = args.symbols * args.days
    token = uuid.uuid4().hex[:10]
    bucket, schema = f"bench-load-{token}", f"bench_load_{token}"
    s3_client(settings).create_bucket(Bucket=bucket)
    fs = lake_filesystem(settings)
    # As `stocklake up` provisions WAREHOUSE_SCHEMA: owned by the pipeline's role.
    create_warehouse_schema(settings, schema)
    try:
        rows = daily_rows(args.symbols, args.days, seed=1)
        started = time.perf_counter()
        files = write_partitions(fs, bucket, rows)
        print(
            f"{n:,} rows in {files} parquet files written in {time.perf_counter() - started:.1f} s"
        )

        reference = {fmt: raw_copy(settings, schema, rows, fmt) for fmt in ("binary", "csv")}
        for fmt, seconds in reference.items():
            rate = n / seconds
            print(f"reference raw {fmt} COPY into UNLOGGED: {seconds:.2f} s, {rate:,.0f} rows/s")

        results = {"empty target": run_loader(schema, bucket)}
        write_partitions(fs, bucket, daily_rows(args.symbols, args.days, seed=2))
        results["every row an update"] = run_loader(schema, bucket)
        results["unchanged re-load"] = run_loader(schema, bucket)
        for case, result in results.items():
            rate = result["staged"] / result["seconds"]
            phases = ", ".join(f"{k} {v:.2f}" for k, v in result["phases"].items())
            print(
                f"loader, {case}: {result['seconds']:.2f} s, {rate:,.0f} rows/s"
                f" (inserted {result['inserted']:,}, updated {result['updated']:,});"
                f" {rate / (n / reference['binary']):.0%} of binary COPY,"
                f" {rate / (n / reference['csv']):.0%} of CSV COPY;"
                f" peak RSS {result['rss_mb']:.0f} MB; phases s: {phases}"
            )
    finally:
        fs.rm(bucket, recursive=True)
        with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
