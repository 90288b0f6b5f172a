"""Bounded retries: exponential waits, a clear error at the end, no retry of real errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from streaming.errors import LandingError
from streaming.retry import RetryPolicy, call_with_retries
from streaming.store import is_transient_s3_error


def test_waits_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, first_delay=0.5, max_delay=3.0)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.total_wait == 9.5


def test_a_transient_fault_is_retried_until_it_clears() -> None:
    waits: list[float] = []
    calls = iter([ConnectionError("down"), ConnectionError("down"), "stored"])

    def action() -> str:
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = call_with_retries(
        action,
        what="writing raw/x",
        policy=RetryPolicy(attempts=5, first_delay=0.1),
        retryable=lambda error: isinstance(error, ConnectionError),
        sleep=waits.append,
    )
    assert result == "stored"
    assert waits == [0.1, 0.2]


def test_after_the_last_attempt_the_error_names_what_failed() -> None:
    waits: list[float] = []

    def action() -> None:
        raise ConnectionError("connection refused")

    with pytest.raises(LandingError, match=r"writing raw/x failed 3 times .*connection refused"):
        call_with_retries(
            action,
            what="writing raw/x",
            policy=RetryPolicy(attempts=3, first_delay=1.0),
            retryable=lambda error: True,
            sleep=waits.append,
        )
    assert waits == [1.0, 2.0]


def test_a_permanent_error_is_raised_at_once() -> None:
    def action() -> None:
        raise PermissionError("access denied")

    with pytest.raises(PermissionError):
        call_with_retries(
            action,
            what="x",
            policy=RetryPolicy(),
            retryable=lambda error: isinstance(error, ConnectionError),
            sleep=lambda _s: pytest.fail("should not wait"),
        )


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(first_delay=5, max_delay=1)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def test_which_s3_errors_are_transient() -> None:
    assert is_transient_s3_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient_s3_error(_client_error("SlowDown", 503))
    assert is_transient_s3_error(_client_error("InternalError", 500))
    assert not is_transient_s3_error(_client_error("NoSuchBucket", 404))
    assert not is_transient_s3_error(_client_error("AccessDenied", 403))
    assert not is_transient_s3_error(ValueError("bug"))
