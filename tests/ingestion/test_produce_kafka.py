"""Producing to the local broker and reading it back; plus the CLI's error paths.

Each service test sends to its own uniquely named topic, deleted afterwards,
so parallel runs and the pipeline's configured topics are never touched.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date

import pytest
from typer.testing import CliRunner

from cli.app import app
from ingestion.errors import ProduceError
from ingestion.kafka_sink import make_producer
from ingestion.producer import produce_historical, produce_ticks
from stocklake.schemas import SYMBOL_RULE, HistoricalBar, RealtimeTick
from stocklake.settings import Settings, load_settings
from tests.streaming.records import parse_record

PARTITIONS = 3


def _delete_topic(admin, name: str) -> None:
    """Delete until really gone: Tansu re-creates a topic that a closing client still asks about."""
    from kafka.errors import UnknownTopicOrPartitionError

    for _attempt in range(10):
        with contextlib.suppress(UnknownTopicOrPartitionError):
            admin.delete_topics([name])
        time.sleep(0.3)
        if name not in admin.list_topics():
            return
    print(f"could not delete topic {name}")  # in-memory broker: a leftover topic is harmless


@pytest.fixture
def admin(stack: Settings) -> Iterator:
    from kafka.admin import KafkaAdminClient

    client = KafkaAdminClient(
        bootstrap_servers=stack.kafka_bootstrap_servers, client_id="test-ingestion"
    )
    yield client
    client.close()


@pytest.fixture
def topic(admin) -> Iterator[str]:
    from kafka.admin import NewTopic

    name = f"test.ingestion.{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    yield name
    _delete_topic(admin, name)


def _read_all(settings: Settings, topic: str, expected: int) -> list:
    """Read the topic from the start until `expected` records came, then briefly for extras.

    Tansu 0.6's end offsets lag behind acknowledged writes, so they cannot say
    when to stop: the expected count (from the producer's summary) does.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list = []
        deadline = time.monotonic() + 20
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def _check_keys_and_partitions(messages, kind: str) -> dict[str, list]:
    """Key = symbol, one partition per symbol, valid contract; records per symbol in order."""
    by_symbol: dict[str, list] = defaultdict(list)
    partition_of: dict[str, int] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        record = parse_record(kind, message.value)
        assert message.key == record.symbol.encode()
        assert partition_of.setdefault(record.symbol, message.partition) == message.partition
        by_symbol[record.symbol].append(record)
    return by_symbol


@pytest.mark.services
def test_ticks_roundtrip_keyed_and_ordered(stack: Settings, topic: str):
    summary = produce_ticks(
        stack,
        600,
        symbols=["AAPL", "MSFT", "NVDA", "ZZZ"],
        seed=11,
        topic=topic,
        session_date=date(2024, 3, 8),
    )
    assert (summary.records, summary.failed) == (600, 0)
    messages = _read_all(stack, topic, 600)
    assert len(messages) == 600
    by_symbol = _check_keys_and_partitions(messages, "realtime")
    assert sum(summary.per_symbol.values()) == 600
    for symbol, ticks in by_symbol.items():
        assert all(isinstance(t, RealtimeTick) for t in ticks)
        assert [t.sequence for t in ticks] == list(range(1, len(ticks) + 1)), symbol
        assert summary.per_symbol[symbol] == len(ticks)
        times = [t.event_time for t in ticks]
        assert times == sorted(times)


@pytest.mark.services
def test_bundled_csv_roundtrip_with_gzip(stack: Settings, topic: str):
    summary = produce_historical(
        stack,
        source="csv",
        topic=topic,
        compression="gzip",
        symbols=["AAPL", "META"],
        start=date(2020, 10, 1),
        end=date(2020, 11, 1),
    )
    # October 2020 had 22 trading days; META's file misses the 23rd.
    assert summary.per_symbol == {"AAPL": 22, "META": 21}
    assert summary.gaps == {"META": [date(2020, 10, 23)]}
    messages = _read_all(stack, topic, 43)
    assert len(messages) == 43
    by_symbol = _check_keys_and_partitions(messages, "historical")
    for bars in by_symbol.values():
        assert all(isinstance(b, HistoricalBar) and b.source == "csv" for b in bars)
        assert [b.ts for b in bars] == sorted(b.ts for b in bars)
    assert len(by_symbol["META"]) == 21


@pytest.mark.services
def test_cli_realtime_json_summary(stack: Settings, topic: str):
    result = CliRunner().invoke(
        app,
        [
            "produce",
            "realtime",
            "--symbols",
            "AAPL,TSLA",
            "--rate",
            "0",
            "--count",
            "200",
            "--seed",
            "5",
            "--topic",
            topic,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["records"] == 200 and summary["failed"] == 0
    assert set(summary["per_symbol"]) == {"AAPL", "TSLA"}
    assert len(_read_all(stack, topic, 200)) == 200


@pytest.mark.services
def test_cli_historical_end_is_exclusive(stack: Settings, topic: str):
    # [start, end) like Airflow's data intervals: AAPL's 2020-12-31 bar is not sent.
    args = ["--source", "csv", "--symbols", "AAPL", "--start", "2020-12-29", "--end", "2020-12-31"]
    result = CliRunner().invoke(app, ["produce", "historical", *args, "--topic", topic, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["records"] == 2
    assert summary["first_event"].startswith("2020-12-29")
    assert summary["last_event"].startswith("2020-12-30")


@pytest.mark.services
def test_missing_topic_is_a_clear_error(stack: Settings, admin):
    from ingestion.kafka_sink import ProduceSummary, send_records
    from ingestion.simulator import accelerated_start, simulate_ticks

    producer = make_producer(stack, max_block_ms=1500)
    ticks = simulate_ticks(["AAPL"], start=accelerated_start(date(2024, 3, 8)), count=3)
    name = f"test.ingestion.absent.{uuid.uuid4().hex[:8]}"
    try:
        try:
            send_records(producer, name, ticks, ProduceSummary(topic=name, source="simulator"))
        except ProduceError as error:
            assert name in str(error)
        else:
            # Brokers that create topics on first use accept it; then the data must be there.
            assert len(_read_all(stack, name, 3)) == 3
    finally:
        producer.close(timeout=5)
        if name in admin.list_topics():
            _delete_topic(admin, name)


def test_no_broker_is_a_clear_error():
    settings = load_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    with pytest.raises(ProduceError, match=r"no Kafka broker answers at 127\.0\.0\.1:9"):
        make_producer(settings, max_block_ms=500, bootstrap_timeout_ms=500)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "csv", "--symbols", "MSFT"], "no bundled 1d CSV for MSFT"),
        (
            [
                "--source",
                "csv",
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-01",
                "--end",
                "2024-02-01",
            ],
            "none in [2024-01-01, 2024-02-01)",
        ),
        (["--source", "csv", "--interval", "5m"], "no bundled CSV has 5m bars"),
        (["--source", "synthetic", "--period", "5d", "--start", "2024-01-01"], "not both"),
        (["--source", "yfinance", "--symbols", "NOSUCH", "--period", "5d"], "NOSUCH: "),
        (["--source", "csv", "--file", "/nonexistent.csv", "--symbol", "X"], "cannot open"),
    ],
)
def test_cli_errors_exit_non_zero_with_a_message(yahoo_replay, args, message):
    # Every case fails while collecting, before any broker is contacted.
    result = CliRunner().invoke(app, ["produce", "historical", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (["historical", "--source", "synthetic", "--symbols", "AAPL,=", "--period", "5d"], "'='"),
        (["historical", "--source", "csv", "--symbols", "..", "--json"], "'..'"),
        (["realtime", "--symbols", "AAPL, a b ,MSFT", "--count", "1", "--rate", "0"], "'A B'"),
        (
            ["realtime", "--symbols", "1AAPL,[bold]X", "--count", "1", "--json"],
            "'1AAPL', '[BOLD]X'",
        ),
    ],
)
def test_a_bad_symbol_is_one_line_naming_the_option_and_the_rule(args, bad, monkeypatch):
    # Checked before any bar is made or any broker is contacted (none answers here anyway).
    no_broker = load_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    monkeypatch.setattr("cli.produce.get_settings", lambda: no_broker)
    result = CliRunner().invoke(app, ["produce", *args], env={"COLUMNS": "60"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "ValidationError" not in result.output
    (line,) = result.output.strip().splitlines()
    assert "--symbols" in line and bad in line and SYMBOL_RULE in line


@pytest.mark.services
def test_the_same_dataset_twice_is_refused_naming_the_first_run(stack: Settings, topic: str, admin):
    from kafka.admin import NewTopic

    from ingestion.producer import DuplicateIngestError, IngestLedger, produce_historical_once

    sendings: list[dict] = []
    ledger = IngestLedger(
        earlier=lambda sha: [row for row in reversed(sendings) if row["fingerprint"] == sha],
        record=sendings.append,
        landing_group=f"test-never-landed-{uuid.uuid4().hex[:8]}",
    )
    options = {
        "source": "csv",
        "topic": topic,
        "symbols": ["AAPL"],
        "start": date(2020, 10, 1),
        "end": date(2020, 10, 8),
    }
    first = produce_historical_once(stack, ledger, run_id="run-1", **options)
    [row] = sendings
    assert (row["run_id"], row["delivery"], row["records"]) == ("run-1", "first", 5)
    spans = json.loads(row["offsets"])
    assert sum(last - start + 1 for start, last in spans.values()) == first.records == 5
    with pytest.raises(DuplicateIngestError, match=r"run run-1 .* is not landed yet"):
        produce_historical_once(stack, ledger, run_id="run-2", **options)
    assert len(sendings) == 1  # refused before anything was sent
    produce_historical_once(stack, ledger, run_id="run-3", force=True, **options)
    produce_historical_once(stack, ledger, run_id="run-4", scheduled=True, **options)
    assert [row["delivery"] for row in sendings] == ["first", "forced", "redelivery"]
    assert len(_read_all(stack, topic, 15)) == 15
    # Another topic feeds another landing: there the same data is a first sending.
    other = f"test.ingestion.{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(other, PARTITIONS, 1)])
    try:
        produce_historical_once(stack, ledger, run_id="run-5", **{**options, "topic": other})
    finally:
        _delete_topic(admin, other)
    assert (sendings[-1]["delivery"], sendings[-1]["topic"]) == ("first", other)
