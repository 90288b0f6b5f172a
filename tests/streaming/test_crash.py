"""kill -9 at any moment, restart: every record is in the lake exactly once."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from stocklake.schemas import QuarantineRecord
from stocklake.settings import PROJECT_ROOT
from streaming.batching import committed_key, pending_key
from tests.streaming.conftest import (
    CRASH_DRIVER,
    Lake,
    land_cli,
    produce,
    subprocess_env,
    unique,
)
from tests.streaming.records import assert_exactly_once, good_ticks, mixed_ticks

pytestmark = pytest.mark.services


def run_driver(lake: Lake, topic: str, crash_at: str | None, batch_records: int = 400):
    args = [sys.executable, str(CRASH_DRIVER), "realtime", topic, unique("g"), str(batch_records)]
    return subprocess.run(
        [*args, crash_at] if crash_at else args,
        cwd=PROJECT_ROOT,
        env=subprocess_env(lake.settings),
        capture_output=True,
        timeout=180,
    )


# Each step of a flush, and the middle of a batch, at a different flush of the run.
CRASH_POINTS = [
    "polled:3",  # records read and buffered, nothing written
    "pending-written:2",  # intent written, no object yet
    "object-written:2",  # some objects of the flush written, others not
    "objects-written:2",  # every object written, no committed marker
    "marker-written:1",  # one partition's marker written, the others not
    "marker-written:3",  # all markers written, offsets not committed to Kafka
    "offsets-committed:1",  # a whole flush done; killed before the next
]


def test_kill_at_every_step_of_a_flush_then_restart(lake: Lake, topic: str) -> None:
    sent = mixed_ticks(5_400, 600, datetime(2024, 2, 29, 22, 0, tzinfo=UTC), timedelta(seconds=1))
    produce(lake.settings, topic, sent.messages)
    # A new consumer group each run: recovery must come from the lake alone.
    for crash_at in CRASH_POINTS:
        run = run_driver(lake, topic, crash_at)
        assert run.returncode == -9, (crash_at, run.returncode, run.stderr.decode()[-2000:])
    final = run_driver(lake, topic, None)
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    assert_exactly_once(lake, 5_400)
    quarantined = Counter()
    coordinates = Counter()
    for _key, line in lake.lines("quarantine/"):
        quarantined[(line["reason"].split(":")[0], QuarantineRecord.original_value(line))] += 1
        coordinates[(line["partition"], line["offset"])] += 1
    assert quarantined == sent.bad
    assert max(coordinates.values()) == 1
    # Nothing half-done is left: every partition's last flush is committed.
    for partition in range(3):
        pending = lake.read(pending_key("realtime", topic, partition))
        committed = lake.read(committed_key("realtime", topic, partition))
        assert json.loads(pending)["last_offset"] == json.loads(committed)["last_offset"]


def test_objects_of_an_unfinished_flush_are_removed_on_restart(lake: Lake, topic: str) -> None:
    # 1,000 ticks of 5 symbols within one hour: one object of >= 200 ticks per partition.
    ticks = good_ticks(1_000, datetime(2024, 1, 1, tzinfo=UTC), timedelta(seconds=1))
    produce(lake.settings, topic, ticks)
    crashed = run_driver(lake, topic, "objects-written:1", batch_records=10_000)
    assert crashed.returncode == -9
    orphans = lake.keys("raw/")
    assert orphans, "the crash should leave objects without a committed marker"
    # Only the claims' committed markers (nothing landed yet) and the flush's intents.
    for partition in range(3):
        assert (
            json.loads(lake.read(committed_key("realtime", topic, partition)))["last_offset"]
            is None
        )
    assert all(
        json.loads(lake.read(pending_key("realtime", topic, p)))["objects"] for p in range(3)
    )

    final = run_driver(lake, topic, None, batch_records=100)
    assert final.returncode == 0, final.stderr.decode()[-3000:]
    summary = json.loads(final.stdout)
    assert summary["discarded_objects"] == len(orphans)
    # Smaller batches now: other names, and none of the orphans survived.
    assert not set(orphans) & set(lake.keys("raw/"))
    assert summary["objects_written"] == len(lake.keys("raw/"))
    assert_exactly_once(lake, 1_000)


def test_random_kill_9_of_the_cli_in_one_consumer_group(lake: Lake, topic: str) -> None:
    produce(
        lake.settings,
        topic,
        good_ticks(20_000, datetime(2024, 3, 9, tzinfo=UTC), timedelta(seconds=0.5)),
    )
    group = unique("g")
    args = ["realtime", "--topic", topic, "--group-id", group, "--until-idle", "2",
            "--batch-records", "200", "--retries", "3", "--json"]  # fmt: skip
    rng = random.Random(2026)
    kills = 0
    for _ in range(3):
        child = land_cli(lake.settings, *args)
        time.sleep(rng.uniform(4.0, 8.0))
        if child.poll() is None:
            child.kill()  # SIGKILL
            kills += 1
        child.communicate(timeout=60)
    assert kills >= 2, "the consumer finished too early for the test to mean anything"
    final = land_cli(lake.settings, *args)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-3000:]
    assert json.loads(out)["stopped_because"] == "idle"
    assert_exactly_once(lake, 20_000)
