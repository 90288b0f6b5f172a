"""Stopping keeps everything: `down` then `up` gives back the same lake, topics, offsets and
warehouse; a kill -9 of the S3 server in the middle of a landing loses nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stocklake.settings import Settings, load_settings
from streaming.landing import default_group_id, land
from tests.private_stack import cli, stack_env
from tests.streaming.conftest import Lake, produce, s3_client
from tests.streaming.records import assert_exactly_once, good_ticks

pytestmark = pytest.mark.services

START = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def _settings(env: dict[str, str]) -> Settings:
    keys = (
        "STATE_DIR", "POSTGRES_PORT", "S3_ENDPOINT_URL", "KAFKA_BOOTSTRAP_SERVERS",
        "SEAWEEDFS_PORTS_FROM", "LAKE_CONSOLE_PORT",
    )  # fmt: skip
    fields = {name: field.alias for name, field in Settings.model_fields.items()}
    by_alias = {alias: name for name, alias in fields.items()}
    return load_settings(**{by_alias[key]: env[key] for key in keys})


def _up(env: dict[str, str]) -> dict[str, dict]:
    result = cli(env, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    status = cli(env, "status", "--json")
    return {s["name"]: s for s in json.loads(status.stdout)}


def _down(env: dict[str, str], pids: list[int]) -> str:
    result = cli(env, "down")
    assert result.returncode == 0, result.stdout + result.stderr
    for pid in pids:
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return result.stdout


@pytest.fixture
def private_stack(tmp_path: Path):
    env = stack_env(tmp_path / "state")
    services = _up(env)
    yield env, _settings(env), services
    cli(env, "down")
    pointer = tmp_path / "state" / "postgres" / "cluster-root"
    if pointer.exists():
        import shutil

        shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)


def _objects(settings: Settings) -> dict[str, str]:
    client = s3_client(settings)
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.lake_bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=settings.lake_bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = hashlib.md5(body).hexdigest()
    return found


def _topic_records(settings: Settings, topic: str) -> tuple[list[tuple[int, int, str]], dict]:
    """Every record of the topic (partition, offset, digest) and the landing group's offsets."""
    from kafka import KafkaConsumer, TopicPartition

    servers = settings.kafka_bootstrap_servers
    reader = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
    reader.assign(partitions)
    reader.seek_to_beginning(*partitions)
    records: list[tuple[int, int, str]] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3:
        polled = reader.poll(timeout_ms=500)
        for messages in polled.values():
            records += [(m.partition, m.offset, hashlib.md5(m.value).hexdigest()) for m in messages]
        if polled:
            idle_since = time.monotonic()
    reader.close()
    group = KafkaConsumer(
        bootstrap_servers=servers, group_id=default_group_id("realtime"), enable_auto_commit=False
    )
    offsets = {tp.partition: group.committed(tp) for tp in partitions}
    group.close()
    return sorted(records), offsets


def _warehouse_checksum(settings: Settings) -> str:
    import psycopg

    with psycopg.connect(settings.postgres_dsn()) as conn:
        row = conn.execute(
            "SELECT md5(string_agg(symbol || ':' || close::text, ',' ORDER BY symbol)) "
            "FROM persistence_check"
        ).fetchone()
    return row[0]


def test_down_then_up_keeps_lake_topics_offsets_and_warehouse(private_stack) -> None:
    env, settings, services = private_stack
    topic = settings.topic_realtime
    produce(settings, topic, good_ticks(6_000, START, timedelta(seconds=1)))
    summary = land(settings, "realtime", until_idle=1.0, handle_signals=False)
    assert summary.landed == 6_000
    # More records that nothing has landed yet: they must be kept too.
    produce(settings, topic, list(good_ticks(7_500, START, timedelta(seconds=1)))[6_000:])
    import psycopg

    with psycopg.connect(settings.postgres_dsn()) as conn:
        conn.execute("CREATE TABLE persistence_check (symbol text PRIMARY KEY, close float8)")
        conn.execute("INSERT INTO persistence_check VALUES ('AAPL', 132.69), ('MSFT', 222.42)")

    before = (_objects(settings), _topic_records(settings, topic), _warehouse_checksum(settings))
    assert len(before[1][0]) == 7_500
    assert all(offset is not None for offset in before[1][1].values())

    _down(env, [s["pid"] for s in services.values()])
    again = _up(env)
    assert {s["pid"] for s in again.values()}.isdisjoint(s["pid"] for s in services.values())
    after = (_objects(settings), _topic_records(settings, topic), _warehouse_checksum(settings))
    assert after[0] == before[0], "lake objects changed across down/up"
    assert after[1][0] == before[1][0], "topic records changed across down/up"
    assert after[1][1] == before[1][1], "committed group offsets changed across down/up"
    assert after[2] == before[2], "warehouse changed across down/up"

    # The records kept in Kafka land after the restart, each once.
    land(settings, "realtime", until_idle=1.0, handle_signals=False)
    assert_exactly_once(Lake(settings, s3_client(settings)), 7_500)


def test_kill_9_of_the_s3_server_mid_landing_loses_nothing(private_stack) -> None:
    env, settings, services = private_stack
    topic, sent = settings.topic_realtime, 200_000
    produce(settings, topic, good_ticks(sent, START, timedelta(milliseconds=50)))
    lander = cli_popen(env, "land", "realtime", "--until-idle", "2", "--retries", "3")
    lake = Lake(settings, s3_client(settings))
    deadline = time.monotonic() + 120
    while not lake.keys("raw/realtime/") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lake.keys("raw/realtime/"), "nothing landed before the kill"
    os.kill(services["s3"]["pid"], signal.SIGKILL)
    lander.wait(timeout=300)
    assert _up(env)["s3"]["healthy"]
    rerun = cli(env, "land", "realtime", "--until-idle", "2", timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_exactly_once(lake, sent)


def cli_popen(env: dict[str, str], *args: str):
    import subprocess
    import sys

    from tests.private_stack import ROOT

    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
