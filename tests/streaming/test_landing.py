"""Landing against the real local broker and S3 endpoint: round trips and bounded modes."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from stocklake import lake as layout
from stocklake.schemas import QuarantineRecord
from stocklake.settings import PROJECT_ROOT
from streaming import LandingError, RetryPolicy, land
from streaming.batching import committed_key
from tests.streaming.conftest import (
    Lake,
    land_cli,
    land_command,
    produce,
    subprocess_env,
    unique,
)
from tests.streaming.records import BAD_REASONS, assert_exactly_once, good_ticks, mixed_ticks

pytestmark = pytest.mark.services

QUICK = RetryPolicy(attempts=3, first_delay=0.2)


def test_ten_thousand_mixed_ticks_round_trip(lake: Lake, topic: str) -> None:
    # 9,000 good ticks every 1.3 s from 22:30 on New Year's Eve: four hours, two days,
    # two months, two years; 1,000 bad values of every kind mixed in.
    sent = mixed_ticks(
        9_000, 1_000, datetime(2023, 12, 31, 22, 30, tzinfo=UTC), timedelta(seconds=1.3)
    )
    produce(lake.settings, topic, sent.messages)

    summary = land(
        lake.settings,
        "realtime",
        topic=topic,
        group_id=unique("g"),
        until_idle=1.0,
        batch_records=3_000,
        retry=QUICK,
    )

    assert (summary.records_in, summary.landed, summary.quarantined_total) == (10_000, 9_000, 1_000)
    assert summary.quarantined == sent.bad_by_reason
    assert set(sent.bad_by_reason) == set(BAD_REASONS)
    assert summary.stopped_because == "idle"
    # Good: each exactly once, byte-for-byte the wire record, under its event hour.
    seen: Counter[int] = Counter()
    hours = set()
    for key, line in lake.lines("raw/realtime/"):
        record = sent.good[line["sequence"]]
        seen[line["sequence"]] += 1
        hour_prefix = layout.raw_realtime_prefix(record.event_time)
        assert key.startswith(hour_prefix), (key, line)
        hours.add(hour_prefix)
        wire = {k: v for k, v in line.items() if not k.startswith("_")}
        assert json.dumps(wire, separators=(",", ":")).encode() == record.to_json()
        assert line["_topic"] == topic
        offsets = layout.parse_object_name(key)
        assert offsets.partition == line["_partition"]
        assert offsets.first_offset <= line["_offset"] <= offsets.last_offset
    assert seen == Counter(dict.fromkeys(sent.good, 1))
    assert {h.split("/hour=")[0] for h in hours} == {
        "raw/realtime/year=2023/month=12/day=31",
        "raw/realtime/year=2024/month=01/day=01",
    }
    assert len(hours) == 4
    # Bad: each with its exact original bytes, its reason and its Kafka coordinates.
    quarantined: Counter[tuple[str, bytes | None]] = Counter()
    coordinates = set()
    for _key, line in lake.lines("quarantine/realtime/"):
        assert set(line) == set(QuarantineRecord.__dataclass_fields__)
        assert line["topic"] == topic
        quarantined[(line["reason"].split(":")[0], QuarantineRecord.original_value(line))] += 1
        coordinates.add((line["partition"], line["offset"]))
    assert quarantined == sent.bad
    assert len(coordinates) == 1_000
    # The committed markers say how far each partition landed.
    for partition, last in summary.last_landed_offsets.items():
        marker = json.loads(lake.read(committed_key("realtime", topic, partition)))
        assert marker["last_offset"] == last


def test_real_daily_bars_land_by_trade_date_and_a_rerun_adds_nothing(
    lake: Lake, topic: str
) -> None:
    from ingestion.csv_source import load_bundled

    bars = [
        bar
        for result in load_bundled(["AAPL", "TSLA"], "1d", None, datetime(2021, 1, 4, tzinfo=UTC))
        for bar in result.bars
    ]
    bad = (
        b'{"schema_version":1,"symbol":"AAPL","ts":"2020-03-02T00:00:00Z","interval":"1d",'
        b'"open":70.0,"high":60.0,"low":65.0,"close":66.0,"volume":1,"source":"csv",'
        b'"ingested_at":"2021-01-04T00:00:00Z"}'
    )
    produce(
        lake.settings, topic, [(b.symbol.encode(), b.to_json()) for b in bars] + [(b"AAPL", bad)]
    )
    group = unique("g")

    first = land(
        lake.settings, "historical", topic=topic, group_id=group, until_idle=1.0, retry=QUICK
    )
    again = land(
        lake.settings, "historical", topic=topic, group_id=group, until_idle=1.0, retry=QUICK
    )

    assert (first.landed, first.quarantined) == (len(bars), Counter({"high_below_low": 1}))
    assert (again.records_in, again.objects_written) == (0, 0)
    for partition, last in first.last_landed_offsets.items():
        assert again.resumed_from[partition] == last + 1
    by_day = Counter()
    for key, line in lake.lines("raw/historical/"):
        assert lake_date(key) == datetime.fromisoformat(line["ts"]).date()
        by_day[(line["symbol"], line["ts"][:10])] += 1
    assert len(by_day) == len(bars) and set(by_day.values()) == {1}
    assert by_day[("AAPL", "2020-12-31")] == 1
    assert ("AAPL", "2020-10-23") in by_day


def lake_date(key: str):
    return layout.partition_date(key)


def test_max_records_stops_exactly_there_and_the_next_run_resumes(lake: Lake, topic: str) -> None:
    produce(
        lake.settings,
        topic,
        good_ticks(5_000, datetime(2024, 5, 1, tzinfo=UTC), timedelta(seconds=1)),
    )
    group = unique("g")

    first = land(
        lake.settings, "realtime", topic=topic, group_id=group, max_records=1_234, retry=QUICK
    )
    rest = land(lake.settings, "realtime", topic=topic, group_id=group, until_idle=1.0, retry=QUICK)

    assert (first.records_in, first.landed, first.stopped_because) == (1_234, 1_234, "max-records")
    assert rest.records_in == 5_000 - 1_234
    assert_exactly_once(lake, 5_000)


def test_flushes_by_record_count(lake: Lake, topic: str) -> None:
    produce(
        lake.settings,
        topic,
        good_ticks(2_000, datetime(2024, 5, 1, tzinfo=UTC), timedelta(seconds=0.01)),
    )
    summary = land(
        lake.settings,
        "realtime",
        topic=topic,
        group_id=unique("g"),
        until_idle=1.0,
        batch_records=250,
        retry=QUICK,
    )
    assert summary.flushes >= 2_000 // 250
    # No flush holds more than 250 records, so no object spans more than 250 offsets.
    for key in lake.keys("raw/"):
        offsets = layout.parse_object_name(key)
        assert offsets.last_offset - offsets.first_offset < 250
    assert_exactly_once(lake, 2_000)


def test_flushes_by_age_while_the_consumer_keeps_running(lake: Lake, topic: str) -> None:
    results: list = []
    runner = threading.Thread(
        target=lambda: results.append(
            land(
                lake.settings,
                "realtime",
                topic=topic,
                group_id=unique("g"),
                until_idle=4.0,
                batch_records=1_000_000,
                batch_age=0.5,
                retry=QUICK,
            )
        )
    )
    runner.start()
    produce(
        lake.settings,
        topic,
        good_ticks(500, datetime(2024, 5, 1, tzinfo=UTC), timedelta(seconds=1)),
    )
    deadline = time.monotonic() + 30
    while not lake.keys("raw/") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lake.keys("raw/"), "nothing landed by age"
    assert runner.is_alive(), "the consumer should still be running (bounded only by idleness)"
    runner.join(60)
    assert results and results[0].landed == 500
    assert_exactly_once(lake, 500)


def test_sigterm_flushes_what_was_read_and_exits_cleanly(lake: Lake, topic: str) -> None:
    child = land_cli(
        lake.settings,
        "realtime",
        "--topic",
        topic,
        "--group-id",
        unique("g"),
        "--batch-age",
        "600",
        "--json",
        "--verbose",
    )
    lines: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        for raw in child.stderr:
            lines.append(raw.decode())
            if "assigned" in lines[-1]:
                ready.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(60), "".join(lines)
    produce(
        lake.settings,
        topic,
        good_ticks(3_000, datetime(2024, 6, 1, tzinfo=UTC), timedelta(seconds=1)),
    )
    time.sleep(3)  # continuous mode: it reads them, but batch age 600 s keeps them buffered
    assert lake.keys("raw/") == []
    child.send_signal(signal.SIGTERM)
    out = child.stdout.read()
    assert child.wait(60) == 0, "".join(lines)
    summary = json.loads(out)
    assert summary["stopped_because"] == "signal SIGTERM"
    assert summary["records_in"] == summary["landed"] == 3_000
    assert_exactly_once(lake, 3_000)


def test_two_consumers_of_one_group_share_the_partitions_exactly_once(
    lake: Lake, topic: str
) -> None:
    start = datetime(2024, 7, 1, tzinfo=UTC)
    ticks = list(good_ticks(6_000, start, timedelta(seconds=1)))
    produce(lake.settings, topic, ticks[:3_000])
    group = unique("g")
    results: list = []

    def one(delay: float) -> None:
        time.sleep(delay)
        results.append(
            land(
                lake.settings,
                "realtime",
                topic=topic,
                group_id=group,
                until_idle=6.0,
                batch_records=500,
                retry=QUICK,
            )
        )

    # The second member joins while the first is running (a rebalance mid-run); the
    # second half trickles in for 12 s, so both members land some of it.
    threads = [threading.Thread(target=one, args=(delay,)) for delay in (0.0, 1.0)]
    for thread in threads:
        thread.start()
    for second in range(12):
        time.sleep(1)
        produce(lake.settings, topic, ticks[3_000 + 250 * second : 3_250 + 250 * second])
    for thread in threads:
        thread.join(180)
    assert len(results) == 2
    assert sum(r.landed for r in results) == 6_000
    assert all(r.landed > 0 for r in results), [r.to_dict() for r in results]
    assert_exactly_once(lake, 6_000)


def test_a_missing_bucket_is_a_clear_error(lake: Lake, topic: str) -> None:
    wrong = lake.settings.model_copy(update={"lake_bucket": "no-such-bucket-here"})
    with pytest.raises(LandingError, match=r"lake bucket 'no-such-bucket-here' .* is not usable"):
        land(wrong, "realtime", topic=topic, until_idle=0.5, retry=QUICK)


def test_an_unreachable_broker_is_a_clear_error_after_retries(lake: Lake) -> None:
    nowhere = lake.settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    started = time.monotonic()
    with pytest.raises(LandingError, match=r"connecting to Kafka at 127.0.0.1:1 failed 2 times"):
        land(nowhere, "realtime", until_idle=0.5, retry=RetryPolicy(attempts=2, first_delay=0.1))
    assert time.monotonic() - started < 30


def test_cli_prints_the_summary_table(lake: Lake, topic: str) -> None:
    sent = mixed_ticks(300, 20, datetime(2024, 8, 1, tzinfo=UTC), timedelta(seconds=1))
    produce(lake.settings, topic, sent.messages)
    result = subprocess.run(
        land_command("realtime", "--topic", topic, "--until-idle", "1", "--group-id", unique("g")),
        capture_output=True,
        cwd=PROJECT_ROOT,
        env=subprocess_env(lake.settings),
        timeout=120,
    )
    text = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    for expected in (
        "records in",
        "320",
        "landed",
        "300",
        "quarantined",
        "not_json",
        "objects written",
        "records/s",
    ):
        assert expected in text, text
