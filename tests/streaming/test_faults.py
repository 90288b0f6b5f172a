"""Transient faults: the S3 endpoint or the broker goes away for a while, then comes back.

Each test runs its own private server (an S3 endpoint, or a broker) so that it
can stop it without disturbing the shared stack.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stocklake.settings import Settings
from streaming import LandingError, RetryPolicy, land
from tests.streaming.conftest import (
    Lake,
    PrivateBroker,
    create_topic,
    produce,
    s3_client,
    unique,
)
from tests.streaming.records import assert_exactly_once, good_ticks

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateS3:
    """A moto S3 server in this process; its objects survive a stop/start (moto's state)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def flaky_lake(stack: Settings) -> Iterator[tuple[Lake, PrivateS3]]:
    s3 = PrivateS3()
    s3.start()
    settings = stack.model_copy(
        update={
            "s3_endpoint_url": f"http://127.0.0.1:{s3.port}",
            "lake_bucket": unique("flaky").lower(),
        }
    )
    client = s3_client(settings)
    client.create_bucket(Bucket=settings.lake_bucket)
    yield Lake(settings, client), s3
    s3.stop()


def test_s3_outage_longer_than_the_retries_is_a_clear_error_then_a_rerun_completes(
    flaky_lake: tuple[Lake, PrivateS3], topic: str
) -> None:
    lake, s3 = flaky_lake
    produce(
        lake.settings,
        topic,
        good_ticks(3_000, datetime(2024, 4, 1, tzinfo=UTC), timedelta(seconds=2)),
    )
    group = unique("g")

    def outage(step: str) -> None:
        if step == "object-written" and s3.server is not None:
            s3.stop()  # and it stays down

    with pytest.raises(LandingError, match=rf"127.0.0.1:{s3.port}.* failed 3 times"):
        land(
            lake.settings, "realtime", topic=topic, group_id=group, until_idle=1.0,
            batch_records=1_000, retry=RetryPolicy(attempts=3, first_delay=0.2), probe=outage,
        )  # fmt: skip
    s3.start()
    summary = land(
        lake.settings, "realtime", topic=topic, group_id=group, until_idle=1.0,
        retry=RetryPolicy(attempts=3, first_delay=0.2),
    )  # fmt: skip
    assert summary.records_in > 0
    assert_exactly_once(lake, 3_000)


def test_s3_outage_within_the_retries_loses_and_duplicates_nothing(
    flaky_lake: tuple[Lake, PrivateS3], topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    lake, s3 = flaky_lake
    produce(
        lake.settings,
        topic,
        good_ticks(4_000, datetime(2024, 4, 1, tzinfo=UTC), timedelta(seconds=2)),
    )
    uploads: list[str] = []
    outages: list[float] = []

    def outage(step: str) -> None:
        # Down for 2 s in the middle of a flush's uploads (after the third object).
        uploads.append(step)
        if uploads.count("object-written") == 3 and not outages:
            outages.append(time.monotonic())
            s3.stop()
            threading.Timer(2.0, s3.start).start()

    summary = land(
        lake.settings, "realtime", topic=topic, group_id=unique("g"), until_idle=1.0,
        batch_records=1_000, retry=RetryPolicy(attempts=8, first_delay=0.25), probe=outage,
    )  # fmt: skip
    assert outages, "the outage never happened"
    assert (summary.records_in, summary.landed) == (4_000, 4_000)
    retries = [m for m in caplog.messages if "failed (attempt" in m and "retrying" in m]
    assert retries and all("PutObject" in m for m in retries)
    assert_exactly_once(lake, 4_000)


def test_broker_unreachable_for_a_while_then_back(lake: Lake) -> None:
    broker = PrivateBroker()
    try:
        settings = lake.settings.model_copy(
            update={"kafka_bootstrap_servers": f"127.0.0.1:{broker.port}"}
        )
        topic = unique("paused")
        create_topic(settings, topic)
        produce(
            settings,
            topic,
            good_ticks(12_000, datetime(2024, 4, 2, tzinfo=UTC), timedelta(seconds=1)),
        )
        paused: list[float] = []

        def pause_once(step: str) -> None:
            # Frozen for 4 s (longer than the idle limit) after the first records arrive.
            if step == "polled" and not paused:
                paused.append(time.monotonic())
                broker.pause(4.0)

        summary = land(
            settings, "realtime", topic=topic, group_id=unique("g"), until_idle=2.0,
            batch_records=2_000, retry=RetryPolicy(attempts=8, first_delay=0.5), probe=pause_once,
        )  # fmt: skip
        assert paused
        assert summary.landed == 12_000
        assert_exactly_once(lake, 12_000)
    finally:
        broker.stop()
