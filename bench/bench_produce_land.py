"""Benchmark: produce and land 1,000,000 real-time ticks on the local stack.

    python bench/bench_produce_land.py [--records 1000000] [--json]

In one run, on a topic and a bucket of its own:
  1. produce the ticks with the simulator's unpaced producer (`ingestion.produce_ticks`);
  2. reference: a plain kafka-python group consumer (same fetch settings as the lander)
     reads them all and does nothing else, in a child process;
  3. `streaming.land` lands them (validate, partition by event hour, write JSON lines,
     markers, commits), in a child process;
  4. the lake is read back: exactly the produced records, each once.
Rates exclude the group join: they run from the first record received to the last one
(reference) or to the last commit (landing). Peak RSS is each child's own ru_maxrss.
Targets: landing >= 70% of the reference rate, landing peak RSS < 500 MB.
Needs the local stack (`stocklake up`); removes its topic and bucket afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stocklake.s3 import s3_client as make_s3_client  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402

SESSION = date(2024, 3, 4)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_reference(topic: str, records: int) -> dict:
    """Consume `records` with kafka-python and nothing else."""
    from kafka import KafkaConsumer

    from streaming.landing import CONSUMER_TUNING, SESSION_TIMEOUT_MS

    settings = get_settings()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=f"bench-reference-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **CONSUMER_TUNING,
    )
    seen = 0
    first = None
    payload = 0
    while seen < records:
        for messages in consumer.poll(timeout_ms=1000).values():
            if first is None:
                first = time.perf_counter()
            seen += len(messages)
            payload += sum(len(m.value) for m in messages)
    seconds = time.perf_counter() - first
    consumer.close(autocommit=False)
    return {
        "records": seen,
        "bytes": payload,
        "seconds": seconds,
        "rate": seen / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_landing(topic: str, records: int) -> dict:
    """Land the topic with the default batch settings, stopping at the last record."""
    from streaming.landing import land

    marks: dict[str, float] = {}

    def probe(step: str) -> None:
        marks.setdefault("first_poll", time.perf_counter())
        if step == "offsets-committed":
            marks["last_commit"] = time.perf_counter()

    summary = land(
        get_settings(),
        "realtime",
        topic=topic,
        group_id=f"bench-land-{uuid.uuid4().hex[:8]}",
        max_records=records,
        probe=probe,
    )
    seconds = marks["last_commit"] - marks["first_poll"]
    return {
        "summary": summary.to_dict(),
        "seconds": seconds,
        "rate": summary.records_in / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_child(kind: str, topic: str, records: int, bucket: str) -> dict:
    env = {**os.environ, "LAKE_BUCKET": bucket, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--topic", topic, "--records", str(records)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _s3(settings: Settings):
    return make_s3_client(settings)


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _read_back(s3, bucket: str) -> dict:
    """Count the landed lines and check each (partition, offset) is there once."""
    coordinates: Counter[tuple[int, int]] = Counter()
    keys = _keys(s3, bucket, "raw/realtime/")
    for key in keys:
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
            record = json.loads(line)
            coordinates[(record["_partition"], record["_offset"])] += 1
    return {
        "objects": len(keys),
        "lines": sum(coordinates.values()),
        "distinct_offsets": len(coordinates),
        "quarantine_objects": len(_keys(s3, bucket, "quarantine/")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--child", choices=["reference", "landing"], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "reference":
        print(json.dumps(child_reference(args.topic, args.records)))
        return
    if args.child == "landing":
        print(json.dumps(child_landing(args.topic, args.records)))
        return

    from kafka.admin import KafkaAdminClient, NewTopic

    from infra.local_stack import LocalStack
    from ingestion.producer import produce_ticks

    settings = get_settings()
    LocalStack(settings).up()
    run_id = uuid.uuid4().hex[:8]
    topic, bucket = f"bench-land-{run_id}", f"bench-land-{run_id}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    admin.create_topics([NewTopic(topic, settings.topic_realtime_partitions, 1)])
    s3 = _s3(settings)
    s3.create_bucket(Bucket=bucket)
    try:
        say = (lambda *_: None) if args.json else print
        say(f"producing {args.records:,} ticks to {topic} ...")
        # A past session: the accelerated clock must not run into the future (quarantined).
        produced = produce_ticks(settings, args.records, topic=topic, session_date=SESSION)
        say(f"  {produced.rate:,.0f} records/s; reference consume ...")
        reference = _run_child("reference", topic, args.records, bucket)
        say(f"  {reference['rate']:,.0f} records/s; landing ...")
        landing = _run_child("landing", topic, args.records, bucket)
        say(f"  {landing['rate']:,.0f} records/s; reading the lake back ...")
        lake = _read_back(s3, bucket)
    finally:
        while keys := _keys(s3, bucket, "")[:1000]:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
        s3.delete_bucket(Bucket=bucket)
        admin.delete_topics([topic])
        admin.close()

    ratio = landing["rate"] / reference["rate"]
    figures = {
        "records": args.records,
        "producer_records_per_s": round(produced.rate),
        "producer_seconds": round(produced.seconds, 1),
        "reference_consume_records_per_s": round(reference["rate"]),
        "reference_seconds": round(reference["seconds"], 1),
        "reference_peak_rss_mb": round(reference["peak_rss_mb"]),
        "landing_records_per_s": round(landing["rate"]),
        "landing_seconds": round(landing["seconds"], 1),
        "landing_wall_seconds_with_start_and_join": round(landing["wall_seconds"], 1),
        "landing_vs_reference": round(ratio, 3),
        "landing_peak_rss_mb": round(landing["peak_rss_mb"]),
        "landing_objects": landing["summary"]["objects_written"],
        "landing_flushes": landing["summary"]["flushes"],
        "landing_mb_written": round(landing["summary"]["bytes_written"] / 1e6, 1),
        "landing_quarantined": landing["summary"]["quarantined"],
        "lake_lines": lake["lines"],
        "lake_distinct_offsets": lake["distinct_offsets"],
        "exactly_once": lake["lines"] == lake["distinct_offsets"] == args.records,
        "targets_met": ratio >= 0.7 and landing["peak_rss_mb"] < 500,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    width = max(map(len, figures))
    print()
    for name, value in figures.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        print(f"{name:<{width}}  {shown}")


if __name__ == "__main__":
    main()
