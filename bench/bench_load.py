"""Benchmark: daily-metric rows into the local PostgreSQL through the loader, three sizes.

    python bench/bench_load.py [--symbols 5000] [--days 20,60,200]

For each size (symbols x days rows: 100k, 300k and 1M by default) the rows are written
as processed parquet (one file per date) into a bucket of its own, then measured in the
same run:
  - the loader (read from the lake, dedup, stage, MERGE, audit), each in a child
    process that reports its peak RSS: into an empty table, then with every row an update;
  - the reference: a binary COPY of the same rows (already in memory) into a new logged
    table with the target's primary key (taken twice, the faster one kept).
Figures go to bench/results/bench_load.json (`ratios.updates_over_copy` at the largest
size). Needs the local stack (`stocklake up`); cleans up its buckets and schemas.
"""

from __future__ import annotations

import argparse
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
import pyarrow.parquet as pq
import s3fs
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import per_record_us, save  # noqa: E402

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
    timed(load_module, "latest_per_key_in_key_order", "dedup and sort")
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


def reference_copy(settings: Settings, schema: str, rows: pa.Table) -> float:
    """Seconds for a binary COPY of in-memory rows into a new logged table with the
    target's columns and primary key (the floor any loader of these rows is held to)."""
    table = sql.Identifier(schema, "reference_copy")
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(DAILY_METRICS.sql_type("postgres", n)))
        for n in DAILY_METRICS.column_names
    )
    key = sql.SQL(", ").join(map(sql.Identifier, DAILY_METRICS.key))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, rows.schema.names))
    )
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(table, columns, key))
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor, cursor.copy(statement) as copy:
            encoder = ArrowToPostgresBinaryEncoder(rows.schema)
            copy.write(encoder.write_header())
            for batch in rows.to_batches(max_chunksize=100_000):
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())
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


def measure_size(settings: Settings, symbols: int, days: int) -> tuple[dict, float]:
    """One size: loader into an empty table, loader with every row an update, reference
    COPY; its `sizes` row and the loaders' peak RSS (MB)."""
    n = symbols * days
    token = uuid.uuid4().hex[:10]
    bucket, schema = f"bench-load-{token}", f"bench_load_{token}"
    s3_client(settings).create_bucket(Bucket=bucket)
    fs = lake_filesystem(settings)
    # As `stocklake up` provisions WAREHOUSE_SCHEMA: owned by the pipeline's role.
    create_warehouse_schema(settings, schema)
    try:
        rows = daily_rows(symbols, days, seed=1)
        files = write_partitions(fs, bucket, rows)
        print(f"{n:,} rows in {files} parquet files", flush=True)
        copies = [reference_copy(settings, schema, rows)]
        empty = run_loader(schema, bucket)
        updated_rows = daily_rows(symbols, days, seed=2)
        write_partitions(fs, bucket, updated_rows)
        updates = run_loader(schema, bucket)
        copies.append(reference_copy(settings, schema, updated_rows))
    finally:
        fs.rm(bucket, recursive=True)
        with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert (empty["inserted"], updates["updated"]) == (n, n), (empty, updates)
    seconds = {"empty": empty["seconds"], "updates": updates["seconds"], "copy": min(copies)}
    for case, result in (("empty target", empty), ("every row an update", updates)):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in result["phases"].items())
        print(
            f"  loader, {case}: {result['seconds']:.2f} s, peak RSS {result['rss_mb']:.0f} MB;"
            f" phases s: {phases}"
        )
    print(f"  binary COPY into a logged keyed table: {copies} s", flush=True)
    row = {
        "label": f"{n / 1e6:g}M rows" if n >= 1_000_000 else f"{n // 1000}k rows",
        "records": n,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "us_per_record": {k: per_record_us(v, n) for k, v in seconds.items()},
        "phases_s": {
            case: {k: round(v, 3) for k, v in result["phases"].items()}
            for case, result in (("empty", empty), ("updates", updates))
        },
    }
    return row, max(empty["rss_mb"], updates["rss_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", default="20,60,200", help="one size per value")
    args = parser.parse_args()
    settings = get_settings()
    sizes, peaks = [], []
    for days in sorted(int(value) for value in args.days.split(",")):
        row, peak = measure_size(settings, args.symbols, days)
        sizes.append(row)
        peaks.append(peak)
    largest = sizes[-1]["seconds"]
    figures = {
        "ratios": {"updates_over_copy": round(largest["updates"] / largest["copy"], 2)},
        # The largest size's loaders: their peak grows with the rows.
        "peak_rss_mb": {"loader": round(peaks[-1], 1)},
        "sizes": sizes,
    }
    print(json.dumps(figures["ratios"]), json.dumps(figures["peak_rss_mb"]))
    save("bench_load", figures)


if __name__ == "__main__":
    main()
