"""Ownership of a partition's markers: stalled landers, brokers that forgot, lakes that did.

A stalled lander is fenced by the partition's new owner; a lake ahead of Kafka's log
stops landing until the partition is reset; a wiped lake is landed again from Kafka.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cli.land import reset_partitions
from stocklake.settings import PROJECT_ROOT
from streaming import LandingError, RetryPolicy, land
from streaming.batching import committed_key
from streaming.store import ConditionFailed, LakeStore
from tests.streaming.conftest import (
    CRASH_DRIVER,
    Lake,
    PrivateBroker,
    create_topic,
    land_cli,
    produce,
    subprocess_env,
    unique,
)
from tests.streaming.records import assert_exactly_once, good_ticks

pytestmark = pytest.mark.services

QUICK = RetryPolicy(attempts=3, first_delay=0.2)


def ticks(count: int, start: datetime):
    return good_ticks(count, start, timedelta(seconds=1))


def day_sequences(lake: Lake, day: str) -> Counter[int]:
    return Counter(line["sequence"] for _key, line in lake.lines(f"raw/realtime/{day}/"))


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def epochs(lake: Lake, topic: str) -> list[int]:
    keys = [committed_key("realtime", topic, partition) for partition in range(3)]
    present = set(lake.keys("checkpoints/"))
    return [json.loads(lake.read(key)).get("epoch", 0) if key in present else 0 for key in keys]


def test_a_stalled_lander_is_fenced_by_the_new_owner_and_nothing_is_lost(
    lake: Lake, topic: str
) -> None:
    ticks = list(good_ticks(16_000, datetime(2024, 5, 1, tzinfo=UTC), timedelta(seconds=1)))
    # Stalled after its flush's objects (the resumed lander writes `committed`), then
    # after its intent (the resumed lander writes objects after the new owner's recovery).
    for round_, stall_at in enumerate(("objects-written:2:stop", "pending-written:2:stop")):
        produce(lake.settings, topic, ticks[8_000 * round_ : 8_000 * (round_ + 1)])
        group = unique("g")
        stale = subprocess.Popen(
            [sys.executable, str(CRASH_DRIVER), "realtime", topic, group, "500", stall_at],
            cwd=PROJECT_ROOT, env=subprocess_env(lake.settings),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(lambda: stopped(stale.pid), "the lander to stall")  # noqa: B023
        stale_epochs = epochs(lake, topic)
        fresh = land_cli(lake.settings, "realtime", "--topic", topic, "--group-id", group,
                         "--until-idle", "3", "--batch-records", "500", "--retries", "3",
                         "--json")  # fmt: skip
        # Past the 6 s session: the new owner has claimed every partition (bumped epochs;
        # at most 25 s, so that a lander without claims shows what it does then).
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not all(
            new > old for new, old in zip(epochs(lake, topic), stale_epochs, strict=True)
        ):
            time.sleep(0.2)
        os.kill(stale.pid, signal.SIGCONT)
        _out, err = stale.communicate(timeout=60)
        assert stale.returncode != 0, err.decode()[-2000:]
        assert "fenced by a newer owner" in " ".join(err.decode().split()), err.decode()
        _out, err = fresh.communicate(timeout=120)
        assert fresh.returncode == 0, err.decode()[-3000:]
    assert_exactly_once(lake, 16_000)


BEYOND_THE_END = r"the lake has landed up to offset \d+ but Kafka's log ends at \d+ \(starts at 0\)"
NEW_TOPIC_ID = r"the lake's markers were written for topic id [-0-9a-f]+, the topic now has id"


# Fewer records than landed: the offsets show it. More: only the topic's new id does.
@pytest.mark.parametrize(
    ("before", "after", "error"),
    [(4_000, 1_000, BEYOND_THE_END), (1_000, 2_500, NEW_TOPIC_ID)],
    ids=["shorter-log", "longer-log"],
)
def test_a_broker_restarted_empty_stops_landing_until_its_partitions_are_reset(
    lake: Lake, before: int, after: int, error: str
) -> None:
    topic, group = unique("reborn"), unique("g")
    broker = PrivateBroker()
    try:
        settings = lake.settings.model_copy(
            update={"kafka_bootstrap_servers": f"127.0.0.1:{broker.port}"}
        )
        create_topic(settings, topic)
        produce(settings, topic, ticks(before, datetime(2024, 6, 1, tzinfo=UTC)))
        first = land(settings, "realtime", topic=topic, group_id=group, until_idle=1.0, retry=QUICK)
        assert first.landed == before
    finally:
        broker.stop()
    broker = PrivateBroker()  # memory storage: it comes back empty
    try:
        settings = settings.model_copy(
            update={"kafka_bootstrap_servers": f"127.0.0.1:{broker.port}"}
        )
        create_topic(settings, topic)
        produce(settings, topic, ticks(after, datetime(2024, 6, 10, tzinfo=UTC)))
        with pytest.raises(
            LandingError,
            match=rf"{topic}\[\d\]: {error}.*stocklake land realtime --reset-partition \d --from "
            "earliest",
        ):
            land(settings, "realtime", topic=topic, group_id=group, until_idle=1.0, retry=QUICK)
        again = land(
            settings, "realtime", topic=topic, group_id=group, until_idle=1.0, retry=QUICK,
            reset_partitions=reset_partitions([0, 1, 2], "earliest"),
        )  # fmt: skip
    finally:
        broker.stop()
    assert again.landed == after
    assert day_sequences(lake, "year=2024/month=06/day=10") == Counter(range(1, after + 1))
    assert day_sequences(lake, "year=2024/month=06/day=01") == Counter(range(1, before + 1))


def test_reset_options_of_the_cli() -> None:
    assert reset_partitions(None, None) == {}
    assert reset_partitions([1, 2], "earliest") == {1: None, 2: None}
    assert reset_partitions([0], "1200") == {0: 1200}
    for partitions, start in (([0], None), (None, "earliest"), ([0], "latest")):
        with pytest.raises(Exception, match=r"--from|offset"):
            reset_partitions(partitions, start)


def empty_bucket(lake: Lake) -> int:
    keys = lake.keys()
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": key} for key in keys[start : start + 1000]]
        lake.client.delete_objects(Bucket=lake.bucket, Delete={"Objects": chunk})
    return len(keys)


def test_a_lake_wiped_mid_landing_is_landed_again_from_kafka(lake: Lake, topic: str) -> None:
    produce(lake.settings, topic, ticks(20_000, datetime(2024, 7, 1, tzinfo=UTC)))
    group = unique("g")
    args = ["realtime", "--topic", topic, "--group-id", group, "--until-idle", "2",
            "--batch-records", "500", "--retries", "3"]  # fmt: skip
    lander = land_cli(lake.settings, *args)
    wait_for(lambda: len(lake.keys("raw/")) >= 6, "the first objects")
    assert lander.poll() is None, "the lander finished before the wipe"
    os.kill(lander.pid, signal.SIGSTOP)  # so that the wipe is whole, not a race
    assert empty_bucket(lake) > 0
    os.kill(lander.pid, signal.SIGCONT)
    _out, err = lander.communicate(timeout=120)
    if lander.returncode != 0:  # the CLI's console wraps long lines
        assert "was deleted while landing" in " ".join(err.decode().split()), err.decode()
    # The group's committed offsets are far along: the rerun must start from Kafka's earliest.
    rerun = land(
        lake.settings, "realtime", topic=topic, group_id=group, until_idle=1.0, retry=QUICK
    )
    assert rerun.landed == 20_000
    assert_exactly_once(lake, 20_000)


def test_markers_whose_objects_are_gone_are_a_clear_error(lake: Lake, topic: str) -> None:
    produce(lake.settings, topic, ticks(1_500, datetime(2024, 7, 2, tzinfo=UTC)))
    land(lake.settings, "realtime", topic=topic, group_id=unique("g"), until_idle=1.0, retry=QUICK)
    raw = lake.keys("raw/")
    lake.client.delete_objects(Bucket=lake.bucket, Delete={"Objects": [{"Key": raw[0]}]})
    with pytest.raises(LandingError, match=r"objects of its last flush are gone .*delete its"):
        land(lake.settings, "realtime", topic=topic, group_id=unique("g"), until_idle=1.0,
             retry=QUICK)  # fmt: skip


def test_a_bucket_deleted_mid_run_is_a_clear_error(lake: Lake, topic: str) -> None:
    produce(lake.settings, topic, ticks(1_000, datetime(2024, 7, 3, tzinfo=UTC)))

    def delete_bucket(step: str) -> None:
        if step == "pending-written":
            empty_bucket(lake)
            lake.client.delete_bucket(Bucket=lake.bucket)

    # S3 and moto answer NoSuchBucket; SeaweedFS re-creates the bucket on the next put,
    # so there the missing marker is what stops the run.
    try:
        with pytest.raises(
            LandingError,
            match=rf"lake bucket '{lake.bucket}' .* does not exist|was deleted while landing",
        ):
            land(lake.settings, "realtime", topic=topic, group_id=unique("g"), until_idle=1.0,
                 retry=QUICK, probe=delete_bucket)  # fmt: skip
    finally:
        if lake.bucket not in {b["Name"] for b in lake.client.list_buckets()["Buckets"]}:
            lake.client.create_bucket(Bucket=lake.bucket)


@pytest.mark.parametrize("honoured", [True, False], ids=["conditional-put", "read-check-write"])
def test_marker_writes_are_refused_once_someone_else_wrote(lake: Lake, honoured: bool) -> None:
    store = LakeStore(lake.settings, policy=QUICK)
    assert store.conditions_honoured()  # SeaweedFS honours If-Match / If-None-Match
    store._honoured = honoured  # False: the fallback for servers that ignore them
    key = "checkpoints/land-realtime/t/partition=0/committed.json"
    first = store.put_if(key, b'{"epoch":1}', None)
    with pytest.raises(ConditionFailed):
        store.put_if(key, b'{"epoch":1,"owner":"other"}', None)  # the key exists now
    second = store.put_if(key, b'{"epoch":2}', first)
    with pytest.raises(ConditionFailed):
        store.put_if(key, b'{"epoch":3}', first)  # stale: someone wrote since
    assert lake.read(key) == b'{"epoch":2}'
    lake.client.delete_object(Bucket=lake.bucket, Key=key)
    with pytest.raises(ConditionFailed):
        store.put_if(key, b'{"epoch":3}', second)  # the marker was deleted
    assert lake.keys() == []
