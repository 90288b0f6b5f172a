"""Fixtures for the landing tests: a private bucket and topic per test on the shared stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stocklake.s3 import s3_client as make_s3_client
from stocklake.settings import PROJECT_ROOT, Settings


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def s3_client(settings: Settings):
    return make_s3_client(settings)


def create_topic(settings: Settings, topic: str, partitions: int = 3) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def delete_topic(settings: Settings, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers.split(","))
    try:
        admin.delete_topics([topic])
    except Exception:
        pass  # Tansu keeps topics in memory; a leftover only costs a little of it.
    finally:
        admin.close()


def produce(settings: Settings, topic: str, messages: Iterable[tuple[bytes, bytes | None]]) -> int:
    """Send (key, value) pairs and wait for every acknowledgement."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
    )
    futures = [producer.send(topic, key=key, value=value) for key, value in messages]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()
    return len(futures)


@dataclass
class Lake:
    """A private bucket: read back what landed."""

    settings: Settings
    client: object

    @property
    def bucket(self) -> str:
        return self.settings.lake_bucket

    def keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def lines(self, prefix: str) -> Iterator[tuple[str, dict]]:
        """(key, parsed line) of every JSON line under a prefix."""
        for key in self.keys(prefix):
            for line in self.read(key).splitlines():
                yield key, json.loads(line)


@pytest.fixture
def lake(stack: Settings) -> Iterator[Lake]:
    """Settings pointing at a fresh bucket on the shared S3 endpoint (removed afterwards)."""
    settings = stack.model_copy(update={"lake_bucket": unique("land").lower()})
    client = s3_client(settings)
    client.create_bucket(Bucket=settings.lake_bucket)
    yield Lake(settings, client)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=settings.lake_bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=settings.lake_bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=settings.lake_bucket)


@pytest.fixture
def topic(stack: Settings) -> Iterator[str]:
    """A fresh 3-partition topic on the shared broker."""
    name = unique("land-test")
    create_topic(stack, name)
    yield name
    delete_topic(stack, name)


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a child `stocklake` process that uses the same (test) settings."""
    env = dict(os.environ)
    env.update(
        {
            "LAKE_BUCKET": settings.lake_bucket,
            "S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "PYTHONPATH": str(PROJECT_ROOT),
        }
    )
    return env


def land_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "land", *args]


def land_cli(settings: Settings, *args: str, **popen: object) -> subprocess.Popen:
    """Start `python -m cli land ...` as a child process."""
    return subprocess.Popen(
        land_command(*args),
        cwd=PROJECT_ROOT,
        env=subprocess_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


CRASH_DRIVER = Path(__file__).with_name("crash_driver.py")


class PrivateBroker:
    """A Tansu broker of our own on a free port, started at once.

    Memory storage by default (a restart comes back empty); with `s3_bucket` its log
    lives in that bucket of `settings`' S3 endpoint, so `stop()` then `start()` keeps it.
    """

    def __init__(self, settings: Settings | None = None, s3_bucket: str | None = None) -> None:
        from infra.local_stack import tansu_binary
        from tests.private_stack import free_port

        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        storage = f"s3://{s3_bucket}/" if s3_bucket else "memory://tansu/"
        self.command = [
            str(tansu_binary()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", storage,
        ]  # fmt: skip
        self.env = dict(os.environ)
        if s3_bucket:
            assert settings is not None, "an S3-backed broker needs the S3 settings"
            self.env |= {
                "AWS_ENDPOINT": settings.s3_endpoint_url,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": settings.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key,
                "AWS_DEFAULT_REGION": settings.s3_region,
            }
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        import socket
        import time

        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("private Tansu broker did not start")

    def pause(self, seconds: float) -> None:
        import signal
        import threading

        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        threading.Timer(seconds, os.kill, (self.process.pid, signal.SIGCONT)).start()

    def stop(self) -> None:
        import signal

        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)
        self.process = None
