"""Streaming stage: landing consumers from Kafka into the lake's raw zone, exactly once.

`land(settings, "historical" | "realtime", ...) -> LandSummary` is the entry
point (the CLI's `stocklake land` and the Airflow tasks call it); the
exactly-once protocol is described in `streaming.landing`.
"""

from streaming.errors import LandingError
from streaming.landing import LandSummary, default_group_id, land
from streaming.retry import RetryPolicy

__all__ = ["LandSummary", "LandingError", "RetryPolicy", "default_group_id", "land"]
