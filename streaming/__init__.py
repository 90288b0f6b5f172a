"""Streaming stage: landing consumers from Kafka into the lake's raw zone, exactly once.

`land(settings, "historical" | "realtime", ...) -> LandSummary` is the entry
point (the CLI's `stocklake land` and the Airflow tasks call it); its parameters
are the fields of `LandingOptions`; how a run lands is described in `streaming.landing`.
"""

from streaming.errors import LandingError
from streaming.landing import land
from streaming.options import LandingOptions, default_group_id
from streaming.retry import RetryPolicy
from streaming.summary import LandSummary

__all__ = [
    "LandSummary",
    "LandingError",
    "LandingOptions",
    "RetryPolicy",
    "default_group_id",
    "land",
]
