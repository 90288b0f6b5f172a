"""One tick far ahead cannot take the watermark hostage: the landing holds it back, and a
run that still drops most of a batch as late says so (summary, exit code)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingestion.simulator import accelerated_start, simulate_ticks, tick_spacing
from spark_jobs.stream import StreamSummary, WindowQuerySummary, run_stream
from stocklake.schemas import RealtimeTick
from streaming.validation import Accepted, EventClock, RecordGate
from tests.spark_jobs.conftest import _empty_and_delete
from tests.spark_jobs.rawdata import put_raw_realtime

pytestmark = [pytest.mark.services, pytest.mark.spark]

SESSION = datetime(2024, 3, 4, tzinfo=UTC).date()
ORDINARY = list(
    simulate_ticks(
        ["AAPL", "MSFT"],
        seed=11,
        start=accelerated_start(SESSION),
        tick_seconds=tick_spacing(20, "accelerated"),
        count=600,
    )
)
# One valid tick 20 hours ahead of the rest, sent early in the feed.
AHEAD = ORDINARY[10].model_copy(
    update={"event_time": ORDINARY[10].event_time + timedelta(hours=20), "sequence": 99_999}
)
FEED = [*ORDINARY[:20], AHEAD, *ORDINARY[20:]]


def _landed(ticks: list[RealtimeTick], clock: EventClock | None) -> list[RealtimeTick]:
    """The ticks the landing gate accepts, in order (the clock reads far after the session)."""
    now = datetime(2024, 3, 6, tzinfo=UTC)
    gate = RecordGate("realtime", now=now, max_future=timedelta(days=2), clock=clock)
    return [tick for tick in ticks if isinstance(gate.check(tick.to_json()), Accepted)]


def _stream(spark, s3_settings, s3_client, ticks: list[RealtimeTick]) -> StreamSummary:
    bucket = f"sl-spark-late-{uuid.uuid4().hex[:8]}"
    settings = s3_settings.model_copy(update={"lake_bucket": bucket})
    s3_client.create_bucket(Bucket=bucket)
    try:
        # Landed in event-time order per file, as a poll lands them: the tick far ahead
        # sits in the first batch, the ordinary ticks after it come in later batches.
        put_raw_realtime(s3_client, bucket, ticks[:25], ticks_per_file=25)
        time.sleep(1.5)  # the file source orders files by modification time (in seconds)
        put_raw_realtime(s3_client, bucket, ticks[25:], ticks_per_file=100, first_offset=25)
        return run_stream(
            settings,
            available_now=True,
            spark=spark,
            window_sizes=("15m",),
            max_files_per_trigger=1,
        )
    finally:
        _empty_and_delete(s3_client, bucket)


def test_a_tick_20_hours_ahead_is_held_back_and_the_windows_after_it_are_written(
    spark, s3_settings, s3_client
) -> None:
    landed = _landed(FEED, EventClock(timedelta(minutes=15)))
    assert AHEAD not in landed and len(landed) == len(ORDINARY)
    summary = _stream(spark, s3_settings, s3_client, landed)
    assert summary.output_rows > 0
    assert (summary.late_rows_dropped, summary.late_ratio) == (0, 0.0)
    assert summary.late_problem(0.5) is None
    shown = summary.as_dict()
    assert (shown["late_ratio"], shown["max_batch_late_ratio"]) == (0.0, 0.0)


def test_without_the_hold_back_the_late_ratio_reports_the_hostage_watermark(
    spark, s3_settings, s3_client
) -> None:
    landed = _landed(FEED, None)
    assert AHEAD in landed
    summary = _stream(spark, s3_settings, s3_client, landed)
    shown = summary.as_dict()
    assert shown["late_rows_dropped"] > 500
    assert shown["late_ratio"] > 0.8 and shown["max_batch_late_ratio"] == 1.0
    assert "dropped 100% of its ticks as late" in (summary.late_problem(0.5) or "")


@pytest.mark.parametrize(("action", "exit_code"), [("fail", 4), ("warn", 0)])
def test_the_cli_fails_or_warns_when_a_batch_is_mostly_late(
    monkeypatch, action: str, exit_code: int
) -> None:
    from typer.testing import CliRunner

    import cli.spark
    import spark_jobs.session
    import spark_jobs.stream
    from cli.app import app

    class NoSpark:
        def stop(self) -> None:
            pass

    summary = StreamSummary(
        "availableNow",
        [WindowQuerySummary("15m", input_rows=100, late_rows_dropped=90, max_batch_late_ratio=0.9)],
    )
    settings = cli.spark.get_settings().model_copy(
        update={"stream_max_late_ratio": 0.5, "stream_late_action": action}
    )
    monkeypatch.setattr(cli.spark, "get_settings", lambda: settings)
    monkeypatch.setattr(spark_jobs.session, "build_spark", lambda *args: NoSpark())
    monkeypatch.setattr(spark_jobs.stream, "run_stream", lambda *args, **kwargs: summary)
    shown = CliRunner().invoke(app, ["spark", "stream", "--available-now", "--json"])
    assert shown.exit_code == exit_code, shown.output
    assert "dropped 90% of its ticks as late" in " ".join(shown.output.split())
    printed = json.loads(shown.stdout[shown.stdout.index("{") : shown.stdout.rindex("}") + 1])
    assert (printed["late_ratio"], printed["max_batch_late_ratio"]) == (0.9, 0.9)
