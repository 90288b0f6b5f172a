"""Benchmark: produce and land real-time ticks on the local stack, at three sizes.

    python bench/bench_produce_land.py [--sizes 100000,300000,1000000] [--json]

For each size, in one run, on a topic and a bucket of its own:
  1. produce the ticks with the simulator's unpaced producer (`ingestion.produce_ticks`);
  2. reference: a bare kafka-python group consumer reads them all (manual synchronous
     commits every `DEFAULT_BATCH_RECORDS` records, as the lander commits per flush) and
     does nothing else, in a child process;
  3. reference: a bare confluent-kafka group consumer, with the lander's own consumer
     settings and the same commits, in a child process;
  4. `streaming.land` lands them (validate, partition by event hour, write JSON lines,
     markers, commits), in a child process;
  5. the lake is read back: exactly the produced records, each offset once.
Rates exclude process start and the group join: they run from the first record received
to the last commit. Peak RSS is each child's own ru_maxrss.
Goals (issue 14, at the largest size): landing >= 2x the kafka-python rate and >= 0.6x
the confluent-kafka rate, landing peak RSS < 500 MB.
Needs the local stack (`stocklake up`); removes its topics and buckets afterwards.
Figures go to bench/results/bench_produce_land.json (`bench/results.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import peak_rss_mb, per_record_us, save  # noqa: E402
from stocklake.s3 import s3_client  # noqa: E402
from stocklake.settings import Settings, get_settings  # noqa: E402
from streaming.options import DEFAULT_BATCH_RECORDS  # noqa: E402

SESSION = date(2024, 3, 4)
DEFAULT_SIZES = (100_000, 300_000, 1_000_000)
STEPS = ("produce", "kafka_python", "confluent", "landing")
# The kafka-python reference: the big fetches the lander used with kafka-python.
KAFKA_PYTHON_TUNING: dict[str, Any] = {
    "max_poll_records": 5000,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 32 * 1024 * 1024,
}


def _own_peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM is reset by exec, while ru_maxrss keeps the
    forking parent's peak (the parent here holds the produced ticks' figures)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return peak_rss_mb()


class _Clock:
    """First record to last commit; a manual commit every DEFAULT_BATCH_RECORDS records."""

    def __init__(self, commit: Callable[[], None]) -> None:
        self.commit = commit
        self.first: float | None = None
        self.seen = self.payload = self.since_commit = 0

    def took(self, count: int, payload: int) -> None:
        if self.first is None and count:
            self.first = time.perf_counter()
        self.seen += count
        self.payload += payload
        self.since_commit += count
        if self.since_commit >= DEFAULT_BATCH_RECORDS:
            self.commit()
            self.since_commit = 0

    def result(self) -> dict[str, Any]:
        if self.since_commit:
            self.commit()
        assert self.first is not None
        seconds = time.perf_counter() - self.first
        return {
            "records": self.seen,
            "bytes": self.payload,
            "seconds": seconds,
            "rate": self.seen / seconds,
            "peak_rss_mb": _own_peak_rss_mb(),
        }


def child_kafka_python(topic: str, records: int) -> dict[str, Any]:
    """Consume `records` with a bare kafka-python group consumer."""
    from kafka import KafkaConsumer

    from streaming.client import SESSION_TIMEOUT_MS

    settings = get_settings()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        group_id=f"bench-kafka-python-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        **KAFKA_PYTHON_TUNING,
    )
    clock = _Clock(lambda: consumer.commit())
    while clock.seen < records:
        for messages in consumer.poll(timeout_ms=1000).values():
            clock.took(len(messages), sum(len(m.value) for m in messages))
    result = clock.result()
    consumer.close(autocommit=False)
    return result


def child_confluent(topic: str, records: int) -> dict[str, Any]:
    """Consume `records` with a bare confluent-kafka group consumer (the lander's settings)."""
    from confluent_kafka import Consumer, TopicPartition

    from streaming.client import MAX_TAKE, consumer_config

    config = consumer_config(get_settings(), f"bench-confluent-{uuid.uuid4().hex[:8]}")
    consumer = Consumer(config)
    consumer.subscribe([topic])
    last: dict[int, int] = {}

    def commit() -> None:
        offsets = [TopicPartition(topic, p, offset + 1) for p, offset in last.items()]
        consumer.commit(offsets=offsets, asynchronous=False)

    clock = _Clock(commit)
    while clock.seen < records:
        count = payload = 0
        for message in consumer.consume(MAX_TAKE, 1.0):
            if message.error() is None:
                last[message.partition()] = message.offset()
                count += 1
                payload += len(message.value())
        clock.took(count, payload)
    result = clock.result()
    consumer.close()
    return result


def child_landing(topic: str, records: int) -> dict[str, Any]:
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
        "records": summary.records_in,
        "seconds": seconds,
        "rate": summary.records_in / seconds,
        "peak_rss_mb": _own_peak_rss_mb(),
    }


CHILDREN = {
    "kafka_python": child_kafka_python,
    "confluent": child_confluent,
    "landing": child_landing,
}


def _run_child(kind: str, topic: str, records: int, bucket: str) -> dict[str, Any]:
    env = {**os.environ, "LAKE_BUCKET": bucket, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--topic", topic, "--sizes", str(records)],
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


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from (item["Key"] for item in page.get("Contents", []))


def _read_back(s3: Any, bucket: str) -> dict[str, Any]:
    """Count the landed lines and check each (partition, offset) is there once."""
    coordinates: Counter[tuple[int, int]] = Counter()
    keys = list(_keys(s3, bucket, "raw/realtime/"))
    for key in keys:
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
            record = json.loads(line)
            coordinates[(record["_partition"], record["_offset"])] += 1
    return {
        "objects": len(keys),
        "lines": sum(coordinates.values()),
        "distinct_offsets": len(coordinates),
        "offsets_more_than_once": sum(1 for n in coordinates.values() if n > 1),
        "quarantine_objects": len(list(_keys(s3, bucket, "quarantine/"))),
    }


def _remove(settings: Settings, s3: Any, admin: Any, topic: str, bucket: str) -> None:
    while keys := list(_keys(s3, bucket, ""))[:1000]:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    s3.delete_bucket(Bucket=bucket)
    admin.delete_topics([topic])


def run_size(settings: Settings, records: int, say: Callable[..., None]) -> dict[str, Any]:
    """Produce, read with both bare consumers, land, read back: one size, its own topic."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from ingestion.producer import produce_ticks

    run_id = uuid.uuid4().hex[:8]
    topic = bucket = f"bench-land-{run_id}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    admin.create_topics([NewTopic(topic, settings.topic_realtime_partitions, 1)])
    s3 = s3_client(settings)
    s3.create_bucket(Bucket=bucket)
    try:
        say(f"{records:,} ticks: producing to {topic} ...")
        # A past session: the accelerated clock must not run into the future (quarantined).
        produced = produce_ticks(settings, records, topic=topic, session_date=SESSION)
        assert (produced.records, produced.failed) == (records, 0), produced.as_dict()
        runs: dict[str, dict[str, Any]] = {}
        for step in CHILDREN:
            runs[step] = _run_child(step, topic, records, bucket)
            say(f"  {step}: {runs[step]['rate']:,.0f} records/s")
        lake = _read_back(s3, bucket)
    finally:
        _remove(settings, s3, admin, topic, bucket)
        admin.close()
    seconds = {"produce": produced.seconds} | {step: runs[step]["seconds"] for step in runs}
    landing = runs["landing"]
    return {
        "label": f"{records:,} ticks",
        "records": records,
        "seconds": {step: round(seconds[step], 3) for step in STEPS},
        "us_per_record": {step: per_record_us(seconds[step], records) for step in STEPS},
        "records_per_s": {step: round(records / seconds[step]) for step in STEPS},
        "peak_rss_mb": {step: round(runs[step]["peak_rss_mb"]) for step in runs},
        "landing_wall_seconds_with_start_and_join": round(landing["wall_seconds"], 1),
        "landing_objects": landing["summary"]["objects_written"],
        "landing_flushes": landing["summary"]["flushes"],
        "landing_quarantined": landing["summary"]["quarantined"],
        "lake": lake,
        "exactly_once": lake["lines"] == lake["distinct_offsets"] == records
        and landing["records"] == records,
    }


def figures_of(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """The results file's figures: ratios and peak RSS at the largest size, every size's row."""
    largest = max(sizes, key=lambda size: size["records"])
    rate = largest["records_per_s"]
    return {
        "ratios": {
            "landing_over_kafka_python": round(rate["landing"] / rate["kafka_python"], 3),
            "landing_over_confluent": round(rate["landing"] / rate["confluent"], 3),
            "confluent_over_kafka_python": round(rate["confluent"] / rate["kafka_python"], 3),
        },
        "peak_rss_mb": {"landing": largest["peak_rss_mb"]["landing"]},
        "exactly_once": all(size["exactly_once"] for size in sizes),
        "sizes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="comma-separated record counts (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(n.replace("_", "")) for n in args.sizes.split(",") if n.strip()]
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.topic, sizes[0])))
        return

    from infra.local_stack import LocalStack

    settings = get_settings()
    LocalStack(settings).up()
    say = (lambda *_: None) if args.json else print
    figures = figures_of([run_size(settings, records, say) for records in sorted(sizes)])
    if not args.no_save:
        save("bench_produce_land", figures)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(json.dumps({k: v for k, v in figures.items() if k != "sizes"}, indent=2))
    for size in figures["sizes"]:
        print(size["label"], size["records_per_s"], "exactly once:", size["exactly_once"])


if __name__ == "__main__":
    main()
