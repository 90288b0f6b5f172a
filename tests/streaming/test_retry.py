"""Bounded retries: each retry logged, a clear error at the end, no retry of real errors.

The Kafka calls' retries (`call_with_retries`) and the lake store's (botocore's standard
mode, held to the policy's attempts) end the same way: a LandingError naming what failed,
how many times, and what to check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from botocore.exceptions import ClientError
from kafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError

from stocklake.settings import Settings, load_settings
from streaming.errors import LandingError
from streaming.retry import RetryPolicy, call_with_retries
from streaming.store import LakeStore


def flaky(*outcomes: object):
    """An action that raises or returns each outcome in turn, and counts its calls."""
    calls = iter(outcomes)

    def action() -> object:
        action.calls += 1  # type: ignore[attr-defined]
        outcome = next(calls)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    action.calls = 0  # type: ignore[attr-defined]
    return action


def transient(error: BaseException) -> bool:
    return isinstance(error, KafkaConnectionError)


def test_a_transient_fault_is_retried_with_the_policys_waits_and_each_retry_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    action = flaky(KafkaConnectionError("down"), KafkaConnectionError("down"), "committed")
    with caplog.at_level(logging.WARNING, logger="streaming.retry"):
        result = call_with_retries(
            action,
            what="committing offsets",
            policy=RetryPolicy(attempts=5, first_delay=0.1, max_delay=0.15),
            retryable=transient,
            sleep=waits.append,
        )
    assert (result, action.calls) == ("committed", 3)
    assert waits == [0.1, 0.15]
    assert [record.levelno for record in caplog.records] == [logging.WARNING] * 2
    assert "committing offsets failed (attempt 1 of 5, retrying in 0.1 s)" in caplog.messages[0]
    assert "attempt 2 of 5" in caplog.messages[1]


def test_after_the_last_attempt_the_error_names_what_failed_how_often_and_a_hint() -> None:
    action = flaky(*[KafkaConnectionError("connection refused")] * 5)
    with pytest.raises(LandingError) as raised:
        call_with_retries(
            action,
            what="connecting to Kafka at 127.0.0.1:1",
            policy=RetryPolicy(attempts=3, first_delay=0.0),
            retryable=transient,
            hint="Is the broker up (`stocklake status`)?",
            sleep=lambda _s: None,
        )
    assert action.calls == 3
    message = str(raised.value)
    assert message.startswith("connecting to Kafka at 127.0.0.1:1 failed 3 times over ")
    assert "connection refused" in message and message.endswith("(`stocklake status`)?")
    assert isinstance(raised.value.__cause__, KafkaConnectionError)


def test_a_permanent_error_is_raised_at_once_as_it_is() -> None:
    action = flaky(UnknownTopicOrPartitionError("no such topic"), "never")
    with pytest.raises(UnknownTopicOrPartitionError):
        call_with_retries(
            action,
            what="x",
            policy=RetryPolicy(),
            retryable=transient,
            sleep=lambda _s: pytest.fail("should not wait"),
        )
    assert action.calls == 1


def test_the_policy_bounds_the_total_wait_and_rejects_nonsense() -> None:
    assert RetryPolicy(attempts=6, first_delay=0.5, max_delay=3.0).total_wait == 9.5
    assert RetryPolicy(attempts=1).total_wait == 0
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(first_delay=5, max_delay=1)


class FakeS3(BaseHTTPRequestHandler):
    """Answers each request with the next scripted HTTP status (the last one repeats)."""

    script: ClassVar[list[int]] = []
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).seen.append(f"{self.command} {self.path}")
        status = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        codes = {200: "", 403: "AccessDenied", 503: "SlowDown"}
        body = b"" if status == 200 else f"<Error><Code>{codes[status]}</Code></Error>".encode()
        self.send_response(status)
        self.send_header("ETag", '"abc"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET = do_HEAD = _answer

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def fake_s3() -> Iterator[Settings]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeS3.seen = []
    try:
        yield load_settings(
            s3_endpoint_url=f"http://127.0.0.1:{server.server_port}",
            s3_access_key="test",
            s3_secret_key="test-secret",
        )
    finally:
        server.shutdown()
        server.server_close()


def test_s3_faults_are_retried_until_they_clear_each_retry_logged(
    fake_s3: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    FakeS3.script = [503, 503, 200]
    store = LakeStore(fake_s3, bucket="lake", policy=RetryPolicy(attempts=5))
    with caplog.at_level(logging.WARNING, logger="streaming.store"):
        store.put("raw/x.jsonl", b"{}\n")
    assert FakeS3.seen == ["PUT /lake/raw/x.jsonl"] * 3
    assert len(caplog.records) == 2
    assert "PutObject" in caplog.messages[0] and "attempt 1 of 5" in caplog.messages[0]
    assert "SlowDown" in caplog.messages[0]


def test_s3_faults_past_the_attempts_are_a_landing_error_naming_key_endpoint_and_count(
    fake_s3: Settings,
) -> None:
    FakeS3.script = [503]
    store = LakeStore(fake_s3, bucket="lake", policy=RetryPolicy(attempts=3))
    with pytest.raises(LandingError) as raised:
        store.put("raw/x.jsonl", b"{}\n")
    assert len(FakeS3.seen) == 3
    message = str(raised.value)
    assert message.startswith(
        f"writing s3://lake/raw/x.jsonl (S3 endpoint {fake_s3.s3_endpoint_url}) failed 3 times"
    )
    assert "SlowDown" in message and "rerun to resume" in message


def test_an_s3_refusal_is_not_retried(fake_s3: Settings) -> None:
    FakeS3.script = [403]
    store = LakeStore(fake_s3, bucket="lake", policy=RetryPolicy(attempts=5))
    with pytest.raises(ClientError, match="AccessDenied"):
        store.put("raw/x.jsonl", b"{}\n")
    assert len(FakeS3.seen) == 1


def test_an_s3_endpoint_that_is_down_is_named_after_the_attempts() -> None:
    nowhere = load_settings(
        s3_endpoint_url="http://127.0.0.1:1", s3_access_key="test", s3_secret_key="test-secret"
    )
    store = LakeStore(nowhere, bucket="lake", policy=RetryPolicy(attempts=2))
    with pytest.raises(LandingError, match=r"127\.0\.0\.1:1\) failed 2 times .*Could not connect"):
        store.get("raw/x.jsonl")
