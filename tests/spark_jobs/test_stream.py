"""The streaming job against s3a on the local S3 endpoint, checked against pandas."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import date, timedelta

import pandas as pd
import pytest

from ingestion.simulator import accelerated_start, simulate_ticks, tick_spacing
from spark_jobs.contract import HOLD_REASON
from spark_jobs.stream import (
    StreamJobError,
    StreamSummary,
    WindowBatchWriter,
    WindowQuerySummary,
    duration_seconds,
    run_stream,
    window_metrics,
)
from stocklake import lake
from stocklake.schemas import REALTIME_WINDOW_COLUMNS, REALTIME_WINDOW_KEY, WINDOW_SIZES
from tests.spark_jobs.conftest import _empty_and_delete
from tests.spark_jobs.rawdata import put_raw_realtime, reference_windows

pytestmark = [pytest.mark.services, pytest.mark.spark]

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
WATERMARK = 600
SLIDE = 300
SESSION = date(2024, 3, 4)  # a Monday
# The accelerated clock at 20 ticks per wall second: one tick per ~19.5 s of event time.
TICKS = list(
    simulate_ticks(
        SYMBOLS,
        seed=7,
        start=accelerated_start(SESSION),
        tick_seconds=tick_spacing(20, "accelerated"),
        count=1200,
    )
)
FIRST, SECOND = TICKS[:600], TICKS[600:]


def test_duration_parsing() -> None:
    assert duration_seconds("30s") == 30
    assert duration_seconds("5m") == 300
    assert duration_seconds("10 minutes") == 600
    assert duration_seconds("1h") == 3600
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("soon")


def test_single_tick_window_has_zero_volatility(spark) -> None:
    ticks = spark.createDataFrame(
        [("AAPL", pd.Timestamp("2024-03-04T14:31:00Z").to_pydatetime(), 100.0, 300)],
        "symbol string, event_time timestamp, price double, size bigint",
    )
    rows = window_metrics(ticks, "15m", SLIDE, WATERMARK).collect()
    assert len(rows) == 3  # 15-minute windows sliding by 5 minutes
    assert [row["volatility"] for row in rows] == [0.0, 0.0, 0.0]
    assert [row["vwap"] for row in rows] == [100.0, 100.0, 100.0]
    assert list(rows[0].asDict()) == [name for name, _ in REALTIME_WINDOW_COLUMNS] + [HOLD_REASON]
    assert [row[HOLD_REASON] for row in rows] == [None, None, None]


def test_a_tick_delivered_twice_counts_once(spark) -> None:
    at = pd.Timestamp("2024-03-04T14:31:00Z").to_pydatetime()
    later = pd.Timestamp("2024-03-04T14:32:00Z").to_pydatetime()
    ticks = spark.createDataFrame(
        [
            ("AAPL", at, 1, 100.0, 300),
            ("AAPL", at, 1, 100.0, 300),  # the same tick, re-delivered
            ("AAPL", later, 2, 102.0, 100),
        ],
        "symbol string, event_time timestamp, sequence bigint, price double, size bigint",
    )
    rows = window_metrics(ticks, "15m", SLIDE, WATERMARK).collect()
    assert {row["tick_count"] for row in rows} == {2}
    assert {row["total_volume"] for row in rows} == {400}


def test_replayed_batch_overwrites_its_own_file(lake_settings) -> None:
    writer = WindowBatchWriter(lake_settings, "15m")
    first = writer.target_key(date(2024, 3, 4), 7)
    assert first == writer.target_key(date(2024, 3, 4), 7)
    assert first.startswith(lake.processed_realtime_prefix("15m", date(2024, 3, 4)))
    assert first != writer.target_key(date(2024, 3, 4), 8)


def _processed(spark, settings, window_size: str) -> pd.DataFrame:
    root = lake.s3a_uri(settings.lake_bucket, lake.processed_realtime_prefix(window_size))
    frame = spark.read.parquet(root).toPandas()
    return frame.sort_values(list(REALTIME_WINDOW_KEY)).reset_index(drop=True)


def _closed(reference: pd.DataFrame, ticks, watermark_seconds: int) -> pd.DataFrame:
    """Windows an append-mode query has emitted: those ending at or before the watermark."""
    watermark = max(tick.event_time for tick in ticks) - timedelta(seconds=watermark_seconds)
    return reference[reference["window_end"] <= pd.Timestamp(watermark)]


def _assert_matches(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    key = list(REALTIME_WINDOW_KEY)
    expected = expected.sort_values(key).reset_index(drop=True)
    assert not actual.duplicated(key).any(), "a window row was written twice"
    assert len(actual) == len(expected)
    for name, _ in REALTIME_WINDOW_COLUMNS:
        if name in ("avg_price", "volatility", "vwap", "min_price", "max_price"):
            pd.testing.assert_series_equal(
                actual[name], expected[name], check_names=False, rtol=1e-9, atol=1e-12
            )
        elif name in ("window_start", "window_end"):
            assert list(pd.to_datetime(actual[name], utc=True)) == list(expected[name])
        else:
            assert list(actual[name]) == list(expected[name]), name


@pytest.fixture(scope="module")
def streamed(spark, lake_settings, s3_client):
    """Two available-now runs: the first half of the ticks, then (restarted) the rest."""
    put_raw_realtime(s3_client, lake_settings.lake_bucket, FIRST, ticks_per_file=150)
    first = run_stream(lake_settings, available_now=True, spark=spark, max_files_per_trigger=2)
    put_raw_realtime(
        s3_client, lake_settings.lake_bucket, SECOND, ticks_per_file=150, first_offset=600
    )
    second = run_stream(lake_settings, available_now=True, spark=spark, max_files_per_trigger=2)
    return first, second


def test_windows_equal_pandas_and_restart_adds_no_duplicates(
    spark, lake_settings, streamed
) -> None:
    first, second = streamed
    assert first.input_rows == 600 and second.input_rows == 600
    assert {q.duplicate_rows_dropped for run in streamed for q in run.queries} == {0}
    assert {q.window_size for q in first.queries} == set(WINDOW_SIZES)
    for window_size, size in WINDOW_SIZES.items():
        actual = _processed(spark, lake_settings, window_size)
        expected = _closed(reference_windows(TICKS, window_size, size, SLIDE), TICKS, WATERMARK)
        # A whole simulated session: dozens of closed windows per symbol.
        assert len(expected) > 3 * (6 * 3600 // SLIDE) - 3 * (WATERMARK + size) // SLIDE
        _assert_matches(actual, expected)
        written = sum(
            q.output_rows for run in streamed for q in run.queries if q.window_size == window_size
        )
        assert written == len(actual)


def test_replay_of_a_batch_leaves_no_duplicates(spark, lake_settings, s3_client, streamed) -> None:
    bucket = lake_settings.lake_bucket
    checkpoint = lake.checkpoint_prefix("realtime-window-15m")
    commits = s3_client.list_objects_v2(Bucket=bucket, Prefix=checkpoint + "commits/")
    last = max(
        (item["Key"] for item in commits["Contents"] if item["Key"].rsplit("/", 1)[-1].isdigit()),
        key=lambda key: int(key.rsplit("/", 1)[-1]),
    )
    before = _processed(spark, lake_settings, "15m")
    # Forget that the last batch committed: Spark must run it again on restart.
    s3_client.delete_object(Bucket=bucket, Key=last)
    replay = run_stream(lake_settings, available_now=True, spark=spark, window_sizes=("15m",))
    assert replay.queries[0].batches >= 1
    after = _processed(spark, lake_settings, "15m")
    pd.testing.assert_frame_equal(before, after)


def test_late_ticks_are_dropped_and_counted(spark, lake_settings, s3_client, streamed) -> None:
    before = {size: _processed(spark, lake_settings, size) for size in WINDOW_SIZES}
    # Two ticks from the session's first minutes, long after the watermark passed them.
    early = [next(t for t in TICKS if t.symbol == symbol) for symbol in ("AAPL", "MSFT")]
    late = [
        tick.model_copy(update={"sequence": 10_000 + n, "price": tick.price * 1.5})
        for n, tick in enumerate(early)
    ]
    put_raw_realtime(s3_client, lake_settings.lake_bucket, late, 10, first_offset=5_000)
    summary = run_stream(lake_settings, available_now=True, spark=spark)
    by_size = {q.window_size: q for q in summary.queries}
    for window_size in WINDOW_SIZES:
        # Late ticks are dropped (and counted once each) before they reach any window.
        assert by_size[window_size].input_rows == 2
        assert by_size[window_size].late_rows_dropped == len(late)
        assert by_size[window_size].output_rows == 0
        after = _processed(spark, lake_settings, window_size)
        pd.testing.assert_frame_equal(before[window_size], after)


def test_a_replayed_batch_of_ticks_is_dropped_and_counted(spark, s3_settings, s3_client) -> None:
    bucket = f"sl-spark-replay-{uuid.uuid4().hex[:8]}"
    settings = s3_settings.model_copy(update={"lake_bucket": bucket})
    s3_client.create_bucket(Bucket=bucket)
    try:
        put_raw_realtime(s3_client, bucket, FIRST, ticks_per_file=150)
        first = run_stream(settings, available_now=True, spark=spark, max_files_per_trigger=1000)
        before = {size: _processed(spark, settings, size) for size in WINDOW_SIZES}
        # A producer re-sends its last 60 ticks; they land again under new offsets. Those
        # newer than the watermark are exact duplicates in the dedup state, the rest late.
        replayed = FIRST[-60:]
        put_raw_realtime(s3_client, bucket, replayed, ticks_per_file=60, first_offset=600)
        again = run_stream(settings, available_now=True, spark=spark)
        watermark = max(t.event_time for t in FIRST) - timedelta(seconds=WATERMARK)
        fresh = sum(tick.event_time > watermark for tick in replayed)
        assert 0 < fresh < len(replayed)
        for query in first.queries:
            assert (query.input_rows, query.duplicate_rows_dropped) == (len(FIRST), 0)
        for query in again.queries:
            assert query.input_rows == len(replayed)
            assert query.duplicate_rows_dropped == fresh
            assert query.late_rows_dropped == len(replayed) - fresh
            assert query.output_rows == 0
            pd.testing.assert_frame_equal(
                before[query.window_size], _processed(spark, settings, query.window_size)
            )
        shown = again.as_dict()
        assert shown["duplicate_rows_dropped"] == fresh
        assert [q["duplicate_rows_dropped"] for q in shown["queries"]] == [fresh] * len(
            WINDOW_SIZES
        )
    finally:
        _empty_and_delete(s3_client, bucket)


def test_nothing_landed_yet_is_an_empty_run(spark, s3_settings, s3_client) -> None:
    bucket = f"sl-spark-empty-{uuid.uuid4().hex[:8]}"
    settings = s3_settings.model_copy(update={"lake_bucket": bucket})
    s3_client.create_bucket(Bucket=bucket)
    try:
        summary = run_stream(settings, available_now=True, spark=spark, window_sizes=("15m",))
        assert summary.input_rows == 0 and summary.output_rows == 0
    finally:
        _empty_and_delete(s3_client, bucket)


def test_live_run_starts_on_an_empty_zone_and_stops_cleanly(spark, s3_settings, s3_client) -> None:
    bucket = f"sl-spark-live-{uuid.uuid4().hex[:8]}"
    settings = s3_settings.model_copy(update={"lake_bucket": bucket})
    s3_client.create_bucket(Bucket=bucket)
    stop, result = threading.Event(), {}

    def job() -> None:
        result["summary"] = run_stream(
            settings, available_now=False, processing_time="2s", stop_event=stop, spark=spark
        )

    runner = threading.Thread(target=job)
    runner.start()
    try:
        time.sleep(8)  # both queries running on a zone with no ticks yet
        put_raw_realtime(s3_client, bucket, FIRST, ticks_per_file=300)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=lake.PROCESSED_REALTIME)
            if listing.get("KeyCount", 0) >= 2:
                break
            time.sleep(1)
    finally:
        stop.set()
        runner.join(120)
    summary = result["summary"]
    assert [q.input_rows for q in summary.queries] == [len(FIRST)] * len(WINDOW_SIZES)
    assert all(q.output_rows > 0 for q in summary.queries)
    assert not spark.streams.active
    _empty_and_delete(s3_client, bucket)


def test_cli_summary_shows_late_and_duplicate_rows_dropped(monkeypatch) -> None:
    from typer.testing import CliRunner

    import spark_jobs.session
    import spark_jobs.stream
    from cli.app import app

    class NoSpark:
        def stop(self) -> None:
            pass

    summary = StreamSummary(
        "availableNow",
        [WindowQuerySummary("15m", input_rows=9, late_rows_dropped=2, duplicate_rows_dropped=3)],
    )
    monkeypatch.setattr(spark_jobs.session, "build_spark", lambda *args: NoSpark())
    monkeypatch.setattr(spark_jobs.stream, "run_stream", lambda *args, **kwargs: summary)
    shown = CliRunner().invoke(app, ["spark", "stream", "--available-now"])
    assert shown.exit_code == 0, shown.output
    # Lines may wrap at the terminal's width: compare the text with its spaces collapsed.
    shown_text = " ".join(shown.output.split())
    assert "duplicate rows dropped: 3" in shown_text  # the run's, then each query's
    assert re.search(r"15m windows: [^:]*late rows dropped 2, duplicate rows dropped 3", shown_text)
    as_json = json.loads(
        CliRunner().invoke(app, ["spark", "stream", "--available-now", "--json"]).output
    )
    assert as_json["duplicate_rows_dropped"] == as_json["queries"][0]["duplicate_rows_dropped"] == 3


def test_bad_options_are_named(lake_settings) -> None:
    with pytest.raises(ValueError, match="unknown window size"):
        run_stream(lake_settings, window_sizes=("2m",))
    with pytest.raises(ValueError, match="not a duration"):
        run_stream(lake_settings, watermark="ten")
    assert issubclass(StreamJobError, RuntimeError)
