"""`unlanded()`: records of the pipeline topics past the lake's markers; `down` says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stocklake.settings import PROJECT_ROOT, Settings
from streaming import RetryPolicy, land
from streaming.backlog import unlanded
from tests.private_stack import free_port
from tests.streaming.conftest import Lake, create_topic, delete_topic, produce, unique
from tests.streaming.records import good_ticks

pytestmark = pytest.mark.services

QUICK = RetryPolicy(attempts=3, first_delay=0.2)
SECOND = timedelta(seconds=1)


@pytest.fixture
def pipeline(lake: Lake) -> Iterator[Settings]:
    """The lake's settings with private topics as the two pipeline topics."""
    settings = lake.settings.model_copy(
        update={"topic_historical": unique("bars"), "topic_realtime": unique("ticks")}
    )
    for topic in (settings.topic_historical, settings.topic_realtime):
        create_topic(settings, topic)
    yield settings
    for topic in (settings.topic_historical, settings.topic_realtime):
        delete_topic(settings, topic)


def test_counts_what_waits_past_the_lakes_markers(pipeline: Settings) -> None:
    bars, ticks = pipeline.topic_historical, pipeline.topic_realtime
    assert unlanded(pipeline) == {bars: 0, ticks: 0}
    produce(pipeline, bars, ((b"AAPL", b"{}") for _ in range(2_500)))
    produce(
        pipeline, ticks, good_ticks(10_000, datetime(2024, 6, 3, tzinfo=UTC), timedelta(seconds=1))
    )
    # Exact: end_offsets() on Tansu would say far fewer.
    assert unlanded(pipeline) == {bars: 2_500, ticks: 10_000}

    group = unique("g")
    land(pipeline, "realtime", group_id=group, max_records=4_000, retry=QUICK)
    assert unlanded(pipeline) == {bars: 2_500, ticks: 6_000}
    land(pipeline, "realtime", group_id=group, until_idle=1.0, retry=QUICK)
    assert unlanded(pipeline) == {bars: 2_500, ticks: 0}


def test_a_broker_that_is_down_fails_fast(pipeline: Settings) -> None:
    gone = pipeline.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    started = time.monotonic()
    with pytest.raises(Exception, match="bootstrap"):
        unlanded(gone, timeout=1.0)
    assert time.monotonic() - started < 5


def down(settings: Settings, state_dir: Path, **extra: str) -> subprocess.CompletedProcess:
    """`stocklake down` with a state folder of its own: it has nothing to stop."""
    env = {
        **os.environ,
        "STATE_DIR": str(state_dir),
        "S3_SECRET_KEY": settings.s3_secret_key,  # the shared stack's, not a new state's
        "LAKE_BUCKET": settings.lake_bucket,
        "TOPIC_HISTORICAL": settings.topic_historical,
        "TOPIC_REALTIME": settings.topic_realtime,
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", "down"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_down_says_what_waits_in_kafka(pipeline: Settings, tmp_path: Path) -> None:
    ticks = pipeline.topic_realtime
    produce(
        pipeline, ticks, good_ticks(1_234, datetime(2024, 6, 4, tzinfo=UTC), timedelta(seconds=1))
    )

    result = down(pipeline, tmp_path / "state")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        f"kafka: {ticks} holds 1,234 records not landed yet "
        "(kept; `stocklake land realtime --until-idle 5` lands them)"
    ) in result.stdout
    assert pipeline.topic_historical not in result.stdout
    assert "nothing to stop" in result.stdout

    gone = down(pipeline, tmp_path / "state", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "kafka: could not check for records not landed yet" in gone.stdout
