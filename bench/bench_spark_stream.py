"""Benchmark: the real-time windows job.

  1. throughput: N simulator ticks already in raw/realtime, one `--available-now` run;
  2. latency: ticks produced live on the simulator's accelerated clock (a 6.5 h session
     in about a minute) while the job runs with a processing-time trigger; for every
     window row, (moment the row is readable in processed/) - (moment the raw object
     holding the window's last tick was written). Windows close when the watermark
     passes their end, so this includes the watermark wait in accelerated event time.

Ticks are written straight into raw/ as the landing stage would (no Kafka hop), one
object per wall second: what the landing writes when run with
`LandingOptions(batch_age=1.0)` (`stocklake land --batch-age 1`). With the landing's
default batch_age of 30 s a tick waits up to 30 s before the stream can see it, which
would dominate this latency; the figure here is the stream's own share.
By default the lake is a private S3 server started here (SeaweedFS; --s3-server moto).

    python bench/bench_spark_stream.py --ticks 100000,300000,1000000

Figures go to bench/results/bench_spark_stream.json (`ratios.p95_latency_triggers`:
the p95 latency over both window sizes, in triggers).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import per_record_us, save  # noqa: E402

from infra.private_stack import private_s3  # noqa: E402
from ingestion.simulator import accelerated_start, simulate_ticks, tick_spacing  # noqa: E402
from spark_jobs.stream import duration_seconds  # noqa: E402
from stocklake import lake  # noqa: E402
from stocklake.s3 import s3_client  # noqa: E402
from stocklake.schemas import format_ts  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD", "NFLX", "INTC"]
LANDED_AT = "2024-01-01T00:00:00.000Z"
# The landing option whose flush interval the live producer below stands for.
LANDING_BATCH_AGE_S = 1.0


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


def raw_body(ticks, offset: int, topic: str = "bench") -> bytes:
    lines = []
    for n, tick in enumerate(ticks):
        # Hand-formatted: json.dumps per tick is the slow part at a million ticks.
        lines.append(
            f'{{"schema_version":1,"symbol":"{tick.symbol}",'
            f'"event_time":"{format_ts(tick.event_time)}","price":{tick.price!r},'
            f'"size":{tick.size},"sequence":{tick.sequence},"source":"simulator",'
            f'"_topic":"{topic}","_partition":0,"_offset":{offset + n},'
            f'"_landed_at":"{LANDED_AT}"}}'
        )
    return ("\n".join(lines) + "\n").encode()


def put_ticks(client, bucket: str, ticks, offset: int) -> list[tuple[str, bytes]]:
    """Raw objects for ticks, split by event hour as the landing stage does."""
    by_hour = defaultdict(list)
    for tick in ticks:
        by_hour[lake.raw_realtime_prefix(tick.event_time)].append(tick)
    objects = []
    for prefix, hour in sorted(by_hour.items()):
        name = lake.OffsetRange("bench", 0, offset, offset + len(hour) - 1).object_name()
        objects.append((prefix + name, raw_body(hour, offset)))
        offset += len(hour)
    for key, body in objects:
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return objects


def throughput(settings, spark, n_ticks: int, per_file: int, max_files: int) -> dict:
    from spark_jobs.stream import run_stream

    client = s3_client(settings)
    client.create_bucket(Bucket=settings.lake_bucket)
    began = time.monotonic()
    ticks = list(
        simulate_ticks(
            SYMBOLS,
            seed=1,
            start=accelerated_start(date(2024, 3, 4)),
            tick_seconds=tick_spacing(1000, "accelerated"),
            count=n_ticks,
        )
    )
    generate = time.monotonic() - began
    began = time.monotonic()
    chunks = [ticks[i : i + per_file] for i in range(0, len(ticks), per_file)]
    with ThreadPoolExecutor(4) as pool:
        written = list(
            pool.map(
                lambda n: put_ticks(client, settings.lake_bucket, chunks[n], n * per_file),
                range(len(chunks)),
            )
        )
    upload = time.monotonic() - began
    began = time.monotonic()
    summary = run_stream(settings, available_now=True, spark=spark, max_files_per_trigger=max_files)
    seconds = time.monotonic() - began
    assert summary.input_rows == n_ticks, summary
    return {
        "ticks": n_ticks,
        "event_hours": round(
            (ticks[-1].event_time - ticks[0].event_time).total_seconds() / 3600, 1
        ),
        "raw_objects": sum(len(objects) for objects in written),
        "generate_seconds": round(generate, 1),
        "upload_seconds": round(upload, 1),
        "available_now_seconds": round(seconds, 2),
        "ticks_per_s": round(n_ticks / seconds),
        "batches_per_query": [q.batches for q in summary.queries],
        "window_rows": {q.window_size: q.output_rows for q in summary.queries},
    }


def latency(settings, spark, rate: int, seconds: int, trigger: str, drain: int) -> dict:
    from spark_jobs.stream import run_stream

    client = s3_client(settings)
    bucket = settings.lake_bucket
    client.create_bucket(Bucket=bucket)
    stop = threading.Event()
    result: dict = {}

    def job() -> None:
        result["summary"] = run_stream(
            settings, available_now=False, processing_time=trigger, stop_event=stop, spark=spark
        )

    seen: dict[str, float] = {}
    rows: list[tuple] = []  # (symbol, window_size, window_start, window_end, visible at)
    polling = threading.Event()

    def poll() -> None:
        while not polling.is_set():
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=lake.PROCESSED_REALTIME + "/"
            ):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key in seen or not key.endswith(".parquet"):
                        continue
                    seen[key] = time.time()
                    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                    table = pq.read_table(io.BytesIO(body)).to_pydict()
                    for n in range(len(table["symbol"])):
                        rows.append(
                            (
                                table["symbol"][n],
                                table["window_size"][n],
                                table["window_start"][n],
                                table["window_end"][n],
                                seen[key],
                            )
                        )
            time.sleep(0.25)

    runner = threading.Thread(target=job, daemon=True)
    poller = threading.Thread(target=poll, daemon=True)
    runner.start()
    time.sleep(15)  # the two queries start and take their first (empty) batch
    poller.start()
    ticks_iter = simulate_ticks(
        SYMBOLS,
        seed=2,
        start=accelerated_start(date(2024, 3, 4)),
        tick_seconds=tick_spacing(rate, "accelerated"),
    )
    produced = []  # (symbol, event_time, put wall time)
    offset = 0
    began = time.time()
    for second in range(seconds):
        batch = [next(ticks_iter) for _ in range(rate)]
        put_ticks(client, bucket, batch, offset)
        put_at = time.time()
        offset += len(batch)
        produced.extend((t.symbol, t.event_time, put_at) for t in batch)
        time.sleep(max(0.0, began + second + 1 - time.time()))
    time.sleep(drain)
    stop.set()
    runner.join(180)
    polling.set()
    poller.join(30)

    by_symbol = defaultdict(list)
    for symbol, event_time, put_at in produced:
        by_symbol[symbol].append((event_time, put_at))
    latencies: dict[str, list[float]] = defaultdict(list)
    for symbol, window_size, start, end, visible_at in rows:
        inside = [put for ts, put in by_symbol[symbol] if start <= ts < end]
        if inside:
            latencies[window_size].append(visible_at - max(inside))
    figures = {
        "trigger": trigger,
        "ticks_per_wall_s": rate,
        "produce_seconds": seconds,
        "ticks": len(produced),
        "event_seconds_per_wall_s": round(tick_spacing(rate, "accelerated") * rate),
    }
    for window_size, values in sorted(latencies.items()):
        figures[f"latency_{window_size}"] = {
            "rows": len(values),
            "p50_s": round(float(np.percentile(values, 50)), 2),
            "p95_s": round(float(np.percentile(values, 95)), 2),
            "max_s": round(float(np.max(values)), 2),
        }
    summary = result.get("summary")
    if summary is not None:
        figures["late_rows_dropped"] = {q.window_size: q.late_rows_dropped for q in summary.queries}
        figures["batches"] = {q.window_size: q.batches for q in summary.queries}
    return figures


def size_row(result: dict) -> dict:
    """One `sizes` row of an available-now run."""
    n, seconds = result["ticks"], result["available_now_seconds"]
    label = f"{n / 1e6:g}M ticks" if n >= 1_000_000 else f"{n // 1000}k ticks"
    return {
        "label": label,
        "records": n,
        "seconds": {"available_now": seconds},
        "us_per_record": {"available_now": per_record_us(seconds, n)},
        "raw_objects": result["raw_objects"],
        "batches_per_query": result["batches_per_query"],
    }


def latency_figures(live: dict) -> dict:
    """p50/p95 over both window sizes' rows, and the p95 in triggers."""
    trigger_s = duration_seconds(live["trigger"])
    windows = [value for key, value in live.items() if key.startswith("latency_")]
    p95 = max(window["p95_s"] for window in windows)
    return {
        "ratios": {"p95_latency_triggers": round(p95 / trigger_s, 2)},
        "latency_s": {
            "p50": max(window["p50_s"] for window in windows),
            "p95": p95,
            "trigger": trigger_s,
            "landing_batch_age": LANDING_BATCH_AGE_S,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", default="100000,300000,1000000", help="one run per size")
    parser.add_argument("--ticks-per-file", type=int, default=10_000)
    parser.add_argument("--max-files-per-trigger", type=int, default=25)
    parser.add_argument("--rate", type=int, default=200, help="live ticks per wall second")
    parser.add_argument("--seconds", type=int, default=60, help="live production time")
    parser.add_argument("--trigger", default="5s")
    parser.add_argument("--drain", type=int, default=30)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--use-stack", action="store_true")
    parser.add_argument("--s3-server", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--skip", choices=["throughput", "latency"], default=None)
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args()

    from spark_jobs.session import build_spark

    base = get_settings().model_copy(update={"spark_master": args.master})
    resources = ExitStack()
    if not args.use_stack:
        private = resources.enter_context(private_s3(args.s3_server))
        base = base.model_copy(
            update={k: getattr(private, k) for k in ("s3_endpoint_url", "state_dir")}
        )
    stamp = int(time.time())
    figures: dict = {"master": args.master}
    buckets = []
    try:
        spark = build_spark(base, "bench-stream", {"spark.driver.memory": args.driver_memory})
        if args.skip != "latency":
            settings = base.model_copy(update={"lake_bucket": f"bench-stream-{stamp}-live"})
            buckets.append(settings)
            live = latency(settings, spark, args.rate, args.seconds, args.trigger, args.drain)
            figures.update(latency_figures(live), processing_time=live)
            print(json.dumps(figures, indent=2, default=str), flush=True)
        if args.skip != "throughput":
            figures["sizes"] = []
            for n in sorted(int(value) for value in args.ticks.split(",")):
                settings = base.model_copy(update={"lake_bucket": f"bench-stream-{stamp}-{n}"})
                buckets.append(settings)
                result = throughput(
                    settings, spark, n, args.ticks_per_file, args.max_files_per_trigger
                )
                print(json.dumps(result, default=str), flush=True)
                figures["sizes"].append(size_row(result))
        spark.stop()
    finally:
        if args.use_stack:
            for settings in buckets:
                empty_bucket(settings)
        resources.close()
    print(json.dumps(figures, indent=2, default=str))
    if not args.no_save:
        save("bench_spark_stream", figures)


if __name__ == "__main__":
    main()
