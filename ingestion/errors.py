"""The one error the produce entry points raise for a run that cannot go as asked."""

from __future__ import annotations


class ProduceError(RuntimeError):
    """Producing failed; the message says what and what to do about it."""
