"""Bounded retries with exponential backoff, for S3 and Kafka calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from streaming.errors import LandingError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits double from `first_delay` up to `max_delay`."""

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

    def delays(self) -> Iterator[float]:
        """The waits between attempts (one fewer than the attempts)."""
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)

    @property
    def total_wait(self) -> float:
        return sum(self.delays())


def call_with_retries(
    action: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    retryable: Callable[[Exception], bool],
    hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action`; retry transient failures; after the last, raise LandingError naming `what`."""
    started = time.monotonic()
    waits = policy.delays()
    attempt = 1
    while True:
        try:
            return action()
        except Exception as error:
            if not retryable(error):
                raise
            delay = next(waits, None)
            if delay is None:
                elapsed = time.monotonic() - started
                raise LandingError(
                    f"{what} failed {attempt} times over {elapsed:.1f} s: "
                    f"{type(error).__name__}: {error}" + (f". {hint}" if hint else "")
                ) from error
            log.warning(
                "%s failed (attempt %d of %d, retrying in %.1f s): %s",
                what,
                attempt,
                policy.attempts,
                delay,
                error,
            )
            sleep(delay)
            attempt += 1
