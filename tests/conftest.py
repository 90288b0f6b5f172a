"""Shared fixtures: the embedded local stack, started once per test session."""

from __future__ import annotations

import pytest

from stocklake.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """Ensure the local stack is up (idempotent; `make test` starts it first).

    Never stopped here: `make test` stops it afterwards, and a developer's
    running stack is left as it was.
    """
    from infra.local_stack import LocalStack

    LocalStack(settings).up()
    return settings
