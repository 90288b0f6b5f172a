"""A broker that keeps its log in S3, restarted: landing still lands every record once.

Tansu 0.6.0 answers ListOffsets(LATEST) (`end_offsets()`) with too low an offset (on
these 92,000 records about 74,000); a bounded landing run that trusts it stops with
records still in Kafka. The fetch high watermark is right.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stocklake.settings import Settings
from streaming import RetryPolicy, land
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

RECORDS = 92_000


def empty_bucket(client, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})


@pytest.fixture
def s3_broker(lake: Lake) -> Iterator[tuple[PrivateBroker, Settings]]:
    """A running S3-backed broker, and the lake's settings pointing at it."""
    bucket = unique("tansu-log").lower()
    client = s3_client(lake.settings)
    client.create_bucket(Bucket=bucket)
    broker = PrivateBroker(lake.settings, s3_bucket=bucket)
    try:
        yield (
            broker,
            lake.settings.model_copy(
                update={"kafka_bootstrap_servers": f"127.0.0.1:{broker.port}"}
            ),
        )
    finally:
        broker.stop()
        empty_bucket(client, bucket)
        client.delete_bucket(Bucket=bucket)


def test_restarted_s3_broker_every_record_lands_once(
    lake: Lake, s3_broker: tuple[PrivateBroker, Settings]
) -> None:
    broker, settings = s3_broker
    topic = unique("restart")
    create_topic(settings, topic)
    ticks = good_ticks(RECORDS, datetime(2024, 5, 1, tzinfo=UTC), timedelta(seconds=1))
    produce(settings, topic, ticks)
    broker.stop()
    broker.start()

    # --until-idle 0: stop as soon as the whole topic has landed. That decision is all
    # that stands between this run and records left behind in Kafka.
    summary = land(
        settings, "realtime", topic=topic, group_id=unique("g"), until_idle=0.0,
        retry=RetryPolicy(attempts=3, first_delay=0.2),
    )  # fmt: skip

    assert summary.stopped_because == "idle"
    assert summary.landed == RECORDS
    assert_exactly_once(lake, RECORDS)
