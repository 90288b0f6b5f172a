"""LandingOptions: the parameters of `land`, checked once before anything connects."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stocklake.settings import load_settings
from streaming import LandingOptions, RetryPolicy, land


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"batch_records": 0}, "batch_records must be positive"),
        ({"batch_bytes": -1}, "batch_bytes must be positive"),
        ({"batch_age": 0.0}, "batch_age must be positive"),
        ({"max_records": 0}, "max_records must be positive"),
        ({"until_idle": -1.0}, "until_idle must be >= 0"),
    ],
)
def test_nonsense_is_refused_naming_the_option(fields: dict, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        LandingOptions(**fields)


def test_none_means_the_default() -> None:
    options = LandingOptions(retry=None, probe=None, clock=None, reset_partitions=None)  # type: ignore[arg-type]
    assert options.retry == RetryPolicy()
    assert options.reset_partitions == {}
    assert options.clock().tzinfo is not None
    options.probe("polled")  # does nothing


def test_topic_and_group_default_to_the_kinds() -> None:
    settings = load_settings()
    options = LandingOptions()
    assert options.topic_of(settings, "realtime") == settings.topic_realtime
    assert options.topic_of(settings, "historical") == settings.topic_historical
    assert options.group_of("historical") == "stocklake-land-historical"
    named = LandingOptions(topic="t", group_id="g", max_future=timedelta(0))
    assert (named.topic_of(settings, "realtime"), named.group_of("realtime")) == ("t", "g")


def test_land_refuses_a_wrong_kind_or_options_given_twice() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="kind must be"):
        land(settings, "ticks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        land(settings, "realtime", LandingOptions(), until_idle=1.0)
    with pytest.raises(TypeError):
        land(settings, "realtime", batch_size=10)
