"""Benchmark: a backfill end to end, as a user runs it, at three sizes.

    python bench/bench_backfill.py [--sizes small,medium,large] [--large-symbols 500]

Each size, on a private S3 server (one for the run), a topic of its own on the configured
Kafka and a warehouse schema of its own on the configured PostgreSQL, runs the same
`stocklake` commands a user types, each timed as a whole process:
  1. produce: `stocklake produce historical --source synthetic` (daily bars);
  2. land:    `stocklake land historical --max-records <produced>`;
  3. spark:   `stocklake spark daily --full-refresh`;
  4. load:    `stocklake load daily --full-refresh --schema <own>`.
Then exactly-once is checked on the output: the warehouse holds one row per bar produced
(daily bars: one metrics row per symbol and date), no key twice.

Sizes: small = 7 symbols x 11 years (issue 14's backfill, 2014-2024), medium = 100
symbols x 20 years, large = --large-symbols (500) symbols x 20 years (about 2.5M bars).
Figures go to bench/results/bench_backfill.json (`bench/results.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import peak_rss_mb, per_record_us, save  # noqa: E402
from infra.private_stack import private_s3  # noqa: E402
from stocklake.s3 import s3_client  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402

STEPS = ("produce", "land", "spark_daily", "load")
SMALL_SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "META", "TSLA", "NVDA")


@dataclass(frozen=True)
class Size:
    label: str
    symbols: tuple[str, ...]
    start: str  # inclusive
    end: str  # exclusive


def sizes(args: argparse.Namespace) -> list[Size]:
    def generated(count: int) -> tuple[str, ...]:
        return tuple(f"S{n:04d}" for n in range(count))

    known = {
        "small": Size("small", SMALL_SYMBOLS, "2014-01-01", "2025-01-01"),
        "medium": Size("medium", generated(args.medium_symbols), "2005-01-01", "2025-01-01"),
        "large": Size("large", generated(args.large_symbols), "2005-01-01", "2025-01-01"),
    }
    wanted = [label.strip() for label in args.sizes.split(",") if label.strip()]
    unknown = [label for label in wanted if label not in known]
    if unknown:
        raise SystemExit(f"--sizes: unknown {unknown}; choose from {sorted(known)}")
    return [known[label] for label in wanted]


def stocklake(env: dict[str, str], *args: str, timeout: float = 3600) -> tuple[float, dict]:
    """Run one `stocklake` command as a user would; (wall seconds, its --json summary)."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cli", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"stocklake {' '.join(args[:3])} failed:\n{done.stderr[-4000:]}")
    return seconds, _last_json(done.stdout)


def _last_json(text: str) -> dict:
    """The JSON summary a command printed (pretty-printed: it may span many lines)."""
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


def command_env(settings: Settings, bucket: str, topic: str, schema: str, master: str) -> dict:
    """The environment of the commands: the private lake, this size's topic and schema."""
    return {
        **os.environ,
        # A copy of the checkout (a baseline) still finds the stack's .env and state.
        "STOCKLAKE_HOME": os.environ.get("STOCKLAKE_HOME", str(ROOT)),
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "S3_ACCESS_KEY": settings.s3_access_key,
        "S3_SECRET_KEY": settings.s3_secret_key,
        "LAKE_BUCKET": bucket,
        "TOPIC_HISTORICAL": topic,
        "WAREHOUSE": "postgres",
        "WAREHOUSE_SCHEMA": schema,
        "SPARK_MASTER": master,
        "PYTHONPATH": str(ROOT),
    }


def warehouse_counts(settings: Settings, schema: str) -> tuple[int, int]:
    """(rows, distinct keys) of the size's daily_metrics table."""
    import psycopg
    from psycopg import sql

    query = sql.SQL(
        "SELECT count(*), count(DISTINCT (symbol, trade_date)) FROM {}.daily_metrics"
    ).format(sql.Identifier(schema))
    with psycopg.connect(settings.postgres_dsn()) as conn:
        rows, keys = conn.execute(query).fetchone()
    return int(rows), int(keys)


def run_steps(size: Size, env: dict[str, str], schema: str, driver_memory: str) -> dict:
    """The four commands of one size, timed; the figures of each command's summary."""
    seconds: dict[str, float] = {}
    seconds["produce"], produced = stocklake(
        env,
        *("produce", "historical", "--source", "synthetic", "--interval", "1d", "--seed", "1"),
        *("--symbols", ",".join(size.symbols), "--start", size.start, "--end", size.end),
    )
    bars = int(produced["records"])
    print(f"  produce {bars:,} bars: {seconds['produce']:.1f} s", flush=True)
    group = f"bench-backfill-{uuid.uuid4().hex[:8]}"
    seconds["land"], landed = stocklake(
        env, "land", "historical", "--group-id", group, "--max-records", str(bars)
    )
    objects = landed.get("objects_written")
    print(f"  land: {seconds['land']:.1f} s, {objects} raw objects", flush=True)
    seconds["spark_daily"], daily = stocklake(
        env, "spark", "daily", "--full-refresh", "--conf", f"spark.driver.memory={driver_memory}"
    )
    print(f"  spark daily --full-refresh: {seconds['spark_daily']:.1f} s", flush=True)
    seconds["load"], loaded = stocklake(env, "load", "daily", "--full-refresh", "--schema", schema)
    print(f"  load daily: {seconds['load']:.1f} s", flush=True)
    seconds["total"] = sum(seconds[step] for step in STEPS)
    return {
        "bars": bars,
        "dates": len(daily.get("dates_written", [])),
        "raw_objects": objects,
        "spark_job_seconds": daily.get("seconds"),
        "spark_output_rows": daily.get("output_rows"),
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "load_summary_keys": sorted(loaded)[:20],
    }


def run_size(size: Size, lake: Settings, args: argparse.Namespace) -> dict:
    """One size on its own bucket, topic and schema (all removed afterwards)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from infra.postgres_roles import create_warehouse_schema

    shared = get_settings()
    token = uuid.uuid4().hex[:8]
    bucket, topic = f"backfill-{size.label}-{token}", f"bench-backfill-{size.label}-{token}"
    schema = f"bench_backfill_{size.label}_{token}"
    s3_client(lake).create_bucket(Bucket=bucket)
    admin = KafkaAdminClient(bootstrap_servers=shared.kafka_bootstrap_servers.split(","))
    admin.create_topics([NewTopic(topic, shared.topic_historical_partitions, 1)])
    create_warehouse_schema(shared, schema)
    print(f"{size.label}: {len(size.symbols)} symbols, {size.start} to {size.end}", flush=True)
    try:
        env = command_env(lake, bucket, topic, schema, args.master)
        result = run_steps(size, env, schema, args.driver_memory)
        rows, keys = warehouse_counts(shared, schema)
    finally:
        admin.delete_topics([topic])
        admin.close()
        _drop_schema(shared, schema)
    if not rows == keys == result["bars"]:
        raise SystemExit(f"{size.label}: warehouse {rows} rows / {keys} keys != {result['bars']}")
    result.update(label=size.label, symbols=len(size.symbols), warehouse_rows=rows)
    return result


def _drop_schema(settings: Settings, schema: str) -> None:
    import psycopg
    from psycopg import sql

    dsn = settings.postgres_dsn(settings.warehouse_db, "superuser")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def size_figures(result: dict) -> dict:
    """One row of `sizes` (bench/results.py's convention)."""
    bars = result["bars"]
    return {
        "label": f"{result['label']}: {result['symbols']} symbols, {result['dates']} dates",
        "records": bars,
        "seconds": result["seconds"],
        "us_per_record": {
            step: per_record_us(seconds, bars) for step, seconds in result["seconds"].items()
        },
        "raw_objects": result["raw_objects"],
        "spark_job_seconds": result["spark_job_seconds"],
        "warehouse_rows": result["warehouse_rows"],
    }


def report(results: list[dict]) -> None:
    header = f"{'size':<8}{'bars':>11}" + "".join(f"{step:>13}" for step in (*STEPS, "total"))
    print(header)
    for result in results:
        cells = "".join(f"{result['seconds'][step]:>12.1f}s" for step in (*STEPS, "total"))
        print(f"{result['label']:<8}{result['bars']:>11,}{cells}")
        per_bar = "".join(
            f"{per_record_us(result['seconds'][step], result['bars']):>11.0f}us"
            for step in (*STEPS, "total")
        )
        print(f"{'':<8}{'per bar':>11}{per_bar}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--medium-symbols", type=int, default=100)
    parser.add_argument("--large-symbols", type=int, default=500)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--name", default="bench_backfill", help="results file stem")
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()
    results = []
    with ExitStack() as resources:
        lake = resources.enter_context(private_s3("seaweedfs"))
        for size in sizes(args):
            results.append(run_size(size, lake, args))
    report(results)
    by_label = {result["label"]: result for result in results}
    figures = {
        "seconds": {
            f"{label}_total": result["seconds"]["total"] for label, result in by_label.items()
        },
        "sizes": [size_figures(result) for result in results],
        "peak_rss_mb": {"bench": peak_rss_mb(), "commands": peak_rss_mb(children=True)},
        "master": args.master,
    }
    print(json.dumps(figures, indent=2))
    if not args.no_save:
        save(args.name, figures)


if __name__ == "__main__":
    main()
