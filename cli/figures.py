"""How printed summaries show their figures: for people, not for scripts (`--json` is for those).

Seconds are rounded to hundredths; a rate is shown only when something was processed,
since "0.8 records/s" for a run that processed nothing only misleads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NOTHING = "-"


def seconds_text(seconds: float) -> str:
    """`0.08375` -> `0.08 s`."""
    return f"{seconds:,.2f} s"


def rate_text(count: int, seconds: float, unit: str = "records") -> str:
    """`count` per second of the run, or `-` when nothing was processed."""
    if count <= 0 or seconds <= 0:
        return NOTHING
    rate = count / seconds
    return f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.1f} {unit}/s"


def list_text(items: Sequence[Any], limit: int = 6) -> str:
    """A short list in full; a long one as its first and last items and the count."""
    if not items:
        return "none"
    if len(items) <= limit:
        return ", ".join(map(str, items))
    return f"{items[0]}, {items[1]} .. {items[-1]} ({len(items)})"


def value_text(key: str, value: Any) -> str:
    """One summary value for a person: seconds rounded, counts with separators, lists short."""
    if key == "seconds" and isinstance(value, int | float):
        return seconds_text(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return list_text(value)
    return "none" if value is None else str(value)
