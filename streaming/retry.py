"""Bounded retries of the landing stage's Kafka calls, with tenacity.

S3 calls are retried by botocore itself (its `standard` mode, see `streaming.store`);
both end the same way: every retry is logged as a warning, and the last failure
becomes a LandingError naming what failed, how many times, and what to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TypeVar

from kafka.errors import KafkaError
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from streaming.client import is_transient_confluent_error
from streaming.errors import LandingError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits double from `first_delay` up to `max_delay`.

    S3 calls use `attempts` only: botocore's standard mode chooses its own (jittered) waits.
    """

    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, got {self.attempts}")
        if self.first_delay < 0 or self.max_delay < self.first_delay:
            raise ValueError(
                f"retry delays must satisfy 0 <= first ({self.first_delay}) "
                f"<= max ({self.max_delay})"
            )

    def wait(self) -> wait_exponential:
        """The wait before each retry: first_delay, doubling, at most max_delay."""
        return wait_exponential(multiplier=self.first_delay, max=self.max_delay)

    @property
    def total_wait(self) -> float:
        """The longest a call can spend waiting between its attempts."""
        wait = self.wait()
        return sum(wait(SimpleNamespace(attempt_number=n)) for n in range(1, self.attempts))


def is_transient_kafka_error(error: BaseException) -> bool:
    """Whether the Kafka client calls the error retriable (a lost connection, no leader yet,
    ...): kafka-python's (the probes) or librdkafka's (the landing consumer)."""
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False))
    return is_transient_confluent_error(error)


def gave_up(what: str, attempts: int, seconds: float, error: BaseException, hint: str) -> str:
    """The LandingError text after the last attempt: what, how many times, why, what to do."""
    return (
        f"{what} failed {attempts} times over {seconds:.1f} s: {type(error).__name__}: {error}"
        + (f". {hint}" if hint else "")
    )


def call_with_retries(
    action: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action`; retry transient failures; after the last, raise LandingError naming `what`.

    An error `retryable` refuses is raised at once, as it is.
    """

    def warn(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        log.warning(
            "%s failed (attempt %d of %d, retrying in %.1f s): %s",
            what,
            state.attempt_number,
            policy.attempts,
            state.next_action.sleep,
            state.outcome.exception(),
        )

    started = time.monotonic()
    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy.wait(),
        retry=retry_if_exception(retryable),
        before_sleep=warn,
        sleep=sleep,
    )
    try:
        return retrying(action)
    except RetryError as error:
        last = error.last_attempt
        failure = last.exception()
        assert failure is not None
        elapsed = time.monotonic() - started
        raise LandingError(gave_up(what, last.attempt_number, elapsed, failure, hint)) from failure
