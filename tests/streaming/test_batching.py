"""Where records go: event-time partitions, object names, quarantine lines, markers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stocklake import lake
from stocklake.schemas import HistoricalBar, QuarantineRecord, RealtimeTick
from streaming.batching import (
    PartitionBatch,
    Writer,
    committed_key,
    committed_marker,
    pending_key,
    pending_marker,
    read_marker,
)
from streaming.errors import LandingError
from streaming.validation import Accepted, Rejected
from tests.streaming.records import bad_values, check_record

LANDED_AT = datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
TOPIC = "ticks.test"
DAY = timedelta(days=1)
WRITER = Writer(epoch=3, owner="abc")


def accepted_tick(moment: datetime, sequence: int = 1) -> tuple[bytes, Accepted]:
    raw = RealtimeTick(
        symbol="AAPL", event_time=moment, price=10.5, size=100, sequence=sequence, source="sim"
    ).to_json()
    verdict = check_record("realtime", raw, now=moment, max_future=timedelta(days=1))
    assert isinstance(verdict, Accepted)
    return raw, verdict


def accepted_bar(day: datetime) -> tuple[bytes, Accepted]:
    raw = HistoricalBar(
        symbol="AAPL",
        ts=day,
        interval="1d",
        open=10.0,
        high=11.0,
        low=9.0,
        close=10.5,
        volume=1000,
        source="csv",
        ingested_at=day,
    ).to_json()
    verdict = check_record("historical", raw, now=day, max_future=timedelta(days=1))
    assert isinstance(verdict, Accepted)
    return raw, verdict


def folders(flush) -> dict[str, list[int]]:
    """Folder of each raw object -> the offsets in it (from the lines)."""
    result = {}
    for obj in flush.objects:
        if obj.zone == "raw":
            folder = obj.key.rsplit("/", 1)[0] + "/"
            result[folder] = [json.loads(line)["_offset"] for line in obj.body.splitlines()]
    return result


def test_ticks_follow_event_hours_across_midnight_month_and_year_ends() -> None:
    batch = PartitionBatch("realtime", TOPIC, 2)
    moments = [
        datetime(2023, 12, 31, 22, 59, 59, 999000, tzinfo=UTC),
        datetime(2023, 12, 31, 23, 0, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2023, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),  # late tick, same hour as #2
        datetime(2024, 2, 29, 23, 30, tzinfo=UTC),
        datetime(2024, 3, 1, 0, 0, 0, 1000, tzinfo=UTC),
    ]
    for offset, moment in enumerate(moments, start=100):
        batch.add(offset, *accepted_tick(moment))
    flush = batch.plan(landed_at=LANDED_AT)
    assert folders(flush) == {
        "raw/realtime/year=2023/month=12/day=31/hour=22/": [100],
        "raw/realtime/year=2023/month=12/day=31/hour=23/": [101, 103],
        "raw/realtime/year=2024/month=01/day=01/hour=00/": [102],
        "raw/realtime/year=2024/month=02/day=29/hour=23/": [104],
        "raw/realtime/year=2024/month=03/day=01/hour=00/": [105],
    }
    names = {obj.key.rsplit("/", 1)[1] for obj in flush.objects}
    assert f"{TOPIC}+2+{101:020d}+{103:020d}.jsonl" in names
    assert (flush.first_offset, flush.last_offset, flush.landed) == (100, 105, 6)


def test_offset_timezone_is_partitioned_by_utc_not_by_the_written_offset() -> None:
    raw = (
        b'{"schema_version":1,"symbol":"AAPL","event_time":"2024-01-01T01:30:00+02:00",'
        b'"price":1.0,"size":1,"sequence":1,"source":"s"}'
    )
    verdict = check_record(
        "realtime", raw, now=datetime(2024, 1, 1, tzinfo=UTC), max_future=timedelta(days=1)
    )
    assert isinstance(verdict, Accepted)
    batch = PartitionBatch("realtime", TOPIC, 0)
    batch.add(5, raw, verdict)
    (folder,) = folders(batch.plan(landed_at=LANDED_AT))
    assert folder == "raw/realtime/year=2023/month=12/day=31/hour=23/"


def test_bars_follow_their_utc_date_across_month_end() -> None:
    batch = PartitionBatch("historical", "bars", 0)
    for offset, day in enumerate(
        [datetime(2020, 1, 31, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC)]
    ):
        batch.add(offset, *accepted_bar(day))
    assert folders(batch.plan(landed_at=LANDED_AT)) == {
        lake.raw_historical_prefix(datetime(2020, 1, 31).date()): [0],
        "raw/historical/year=2020/month=02/day=01/": [1],
    }


def test_lines_are_the_wire_record_plus_lineage_columns() -> None:
    batch = PartitionBatch("realtime", TOPIC, 1)
    raw, verdict = accepted_tick(datetime(2024, 3, 1, 9, 30, tzinfo=UTC))
    batch.add(42, raw, verdict)
    (obj,) = batch.plan(landed_at=LANDED_AT).objects
    assert obj.body.endswith(b"\n") and obj.body.count(b"\n") == 1
    line = json.loads(obj.body)
    assert line == {
        **json.loads(raw),
        "_topic": TOPIC,
        "_partition": 1,
        "_offset": 42,
        "_landed_at": "2024-03-01T12:00:00.123Z",
    }
    assert lake.parse_object_name(obj.key) == lake.OffsetRange(TOPIC, 1, 42, 42)


def test_bad_records_go_to_one_quarantine_object_with_bytes_reason_and_coordinates() -> None:
    batch = PartitionBatch("realtime", TOPIC, 0)
    batch.add(10, *accepted_tick(datetime(2024, 3, 1, 9, 0, tzinfo=UTC)))
    batch.add(11, b"\xffnot json", Rejected("not_json", "record: Invalid JSON"))
    batch.add(12, None, Rejected("empty_value", "the Kafka message has no value"))
    batch.add(13, *accepted_tick(datetime(2024, 3, 1, 9, 1, tzinfo=UTC)))
    flush = batch.plan(landed_at=LANDED_AT)
    (bad,) = [obj for obj in flush.objects if obj.zone == "quarantine"]
    assert bad.key == (
        f"quarantine/realtime/year=2024/month=03/day=01/{TOPIC}+0+{11:020d}+{12:020d}.jsonl"
    )
    lines = [json.loads(line) for line in bad.body.splitlines()]
    assert lines == [
        {
            "reason": "not_json: record: Invalid JSON",
            "raw": "\\xffnot json",
            "raw_base64": "/25vdCBqc29u",
            "topic": TOPIC,
            "partition": 0,
            "offset": 11,
            "quarantined_at": "2024-03-01T12:00:00.123Z",
        },
        {
            "reason": "empty_value: the Kafka message has no value",
            "raw": "",
            "raw_base64": None,
            "topic": TOPIC,
            "partition": 0,
            "offset": 12,
            "quarantined_at": "2024-03-01T12:00:00.123Z",
        },
    ]
    assert flush.quarantined == {"not_json": 1, "empty_value": 1}
    assert (flush.landed, flush.first_offset, flush.last_offset) == (2, 10, 13)


def test_quarantine_keeps_every_bad_value_byte_for_byte() -> None:
    # Every kind of bad value (invalid UTF-8 of several sorts included), through the gate.
    now = datetime.now(UTC)
    sent = bad_values(7, now - timedelta(hours=1))
    batch = PartitionBatch("realtime", TOPIC, 0)
    for offset, (_reason, value) in enumerate(sent):
        batch.add(offset, value, check_record("realtime", value, now=now, max_future=DAY))
    (bad,) = batch.plan(landed_at=LANDED_AT).objects
    lines = [json.loads(line) for line in bad.body.splitlines()]
    assert [line["offset"] for line in lines] == list(range(len(sent)))
    for line, (reason, value) in zip(lines, sent, strict=True):
        assert line["reason"].split(":")[0] == reason, line
        assert QuarantineRecord.original_value(line) == value, line
        assert line["raw"] == (value or b"").decode("utf-8", errors="backslashreplace")
    # The readable form alone cannot tell a stray 0xFF from the text "\\xff"; the bytes can.
    escaped, stray = lines[6], lines[7]
    assert escaped["raw"] == stray["raw"] and escaped["raw_base64"] != stray["raw_base64"]
    # A null value (a tombstone) and an empty one are different Kafka values.
    assert [line["raw_base64"] for line in lines[-2:]] == [None, ""]


def test_same_records_plan_the_same_keys_and_bytes() -> None:
    def build() -> list[tuple[str, bytes]]:
        batch = PartitionBatch("realtime", TOPIC, 0)
        for offset in range(50):
            moment = datetime(2024, 3, 1, 23, 59, tzinfo=UTC) + timedelta(seconds=offset * 3)
            batch.add(offset, *accepted_tick(moment, offset))
        return [(o.key, o.body) for o in batch.plan(landed_at=LANDED_AT).objects]

    assert build() == build()


def test_counts_and_bytes_drive_the_flush_thresholds() -> None:
    batch = PartitionBatch("realtime", TOPIC, 0)
    raw, verdict = accepted_tick(datetime(2024, 3, 1, tzinfo=UTC))
    batch.add(0, raw, verdict)
    batch.add(1, b"xx", Rejected("not_json", "x"))
    assert (len(batch), batch.bytes) == (2, len(raw) + 2)


def test_offsets_must_increase_within_a_partition() -> None:
    batch = PartitionBatch("realtime", TOPIC, 0)
    batch.add(5, *accepted_tick(datetime(2024, 3, 1, tzinfo=UTC)))
    with pytest.raises(LandingError, match=r"ticks.test\[0\]: offset 5 arrived after 5"):
        batch.add(5, *accepted_tick(datetime(2024, 3, 1, tzinfo=UTC)))


def test_an_empty_batch_has_nothing_to_plan() -> None:
    with pytest.raises(ValueError, match="nothing to flush"):
        PartitionBatch("realtime", TOPIC, 0).plan(landed_at=LANDED_AT)


def test_markers_round_trip_and_live_in_the_checkpoint_zone() -> None:
    batch = PartitionBatch("realtime", TOPIC, 1)
    for offset in (7, 8):
        batch.add(offset, *accepted_tick(datetime(2024, 3, 1, offset, tzinfo=UTC)))
    flush = batch.plan(landed_at=LANDED_AT)
    for key, body in (
        (
            pending_key("realtime", TOPIC, 1),
            pending_marker(flush, written_at=LANDED_AT, writer=WRITER),
        ),
        (
            committed_key("realtime", TOPIC, 1),
            committed_marker(flush, written_at=LANDED_AT, writer=WRITER),
        ),
    ):
        assert key.startswith(f"checkpoints/land-realtime/{TOPIC}/partition=1/")
        marker = read_marker(body, key=key, topic=TOPIC, partition=1)
        assert (marker.first_offset, marker.last_offset) == (7, 8)
        assert list(marker.objects) == flush.keys and len(flush.keys) == 2
        assert marker.epoch == 3


def test_a_corrupt_or_foreign_marker_is_an_error_naming_its_key() -> None:
    key = committed_key("realtime", TOPIC, 0)
    with pytest.raises(LandingError, match=rf"landing marker {key} is not readable"):
        read_marker(b'{"topic": "x"', key=key, topic=TOPIC, partition=0)
    body = b'{"topic":"other","partition":0,"first_offset":0,"last_offset":1,"objects":[]}'
    with pytest.raises(LandingError, match=r"is for other\[0\], not ticks.test\[0\]"):
        read_marker(body, key=key, topic=TOPIC, partition=0)
