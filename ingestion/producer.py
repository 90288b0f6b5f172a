"""The produce entry points (CLI, Airflow, benchmarks): collect or plan, then send to Kafka.

- `produce_historical`: bars from a source (`ingestion.sources`) to the historical topic.
- `produce_realtime`: a simulator plan (`ingestion.realtime_plan`) to the realtime topic,
  paced at the plan's rate.
- `produce_ticks`: unpaced accelerated-clock ticks, for benchmarks and tests.

The Kafka side (wire value, key, delivery accounting) is `ingestion.kafka_sink`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from ingestion.errors import ProduceError
from ingestion.kafka_sink import Compression, ProduceSummary, Progress, send_to_topic
from ingestion.realtime_plan import RealtimePlan, plan_realtime
from ingestion.simulator import Pacer
from ingestion.sources import HistoricalBatch, collect_historical
from ingestion.yahoo import DEFAULT_SYMBOLS
from stocklake.schemas import SIMULATOR_SOURCE, Clock, HistoricalSource
from stocklake.settings import Settings

__all__ = [
    "ProduceError",
    "ProduceSummary",
    "produce_historical",
    "produce_realtime",
    "produce_ticks",
]


def produce_historical(
    settings: Settings,
    *,
    source: HistoricalSource | str,
    topic: str | None = None,
    compression: Compression | str = Compression.NONE,
    progress: Progress | None = None,
    on_collected: Callable[[HistoricalBatch], None] | None = None,
    **collect_args: Any,
) -> ProduceSummary:
    """Collect bars from a source and send them to the historical topic.

    `collect_args` are those of `collect_historical` (symbols, start, end,
    period, interval, seed, file, symbol, columns, tz, ...). `start` is
    inclusive and `end` exclusive.
    """
    batch = collect_historical(source, **collect_args)
    if on_collected is not None:
        on_collected(batch)
    target = topic or settings.topic_historical
    summary = ProduceSummary(topic=target, source=source, gaps=batch.gaps, notes=batch.notes)
    if not batch.bars:
        summary.notes.append("no bars in the range: nothing sent")
        return summary
    return send_to_topic(settings, batch.bars, summary, compression=compression, progress=progress)


def produce_realtime(
    settings: Settings,
    plan: RealtimePlan,
    *,
    topic: str | None = None,
    compression: Compression | str = Compression.NONE,
    progress: Progress | None = None,
) -> ProduceSummary:
    """Send the plan's ticks to the realtime topic, paced at `plan.rate` per wall second."""
    summary = ProduceSummary(
        topic=topic or settings.topic_realtime,
        source=SIMULATOR_SOURCE,
        notes=[f"clock {plan.clock}, seed {plan.seed}, {plan.tick_seconds:.3f}s simulated/tick"],
    )
    return send_to_topic(
        settings,
        plan.ticks(),
        summary,
        compression=compression,
        progress=progress,
        before_send=Pacer(plan.rate).wait_for,
    )


def produce_ticks(
    settings: Settings,
    count: int,
    *,
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    seed: int = 0,
    topic: str | None = None,
    session_date: date | None = None,
    compression: Compression | str = Compression.NONE,
) -> ProduceSummary:
    """For benchmarks and tests: `count` accelerated-clock ticks, unpaced (rate 0)."""
    plan = plan_realtime(
        symbols,
        rate=0,
        count=count,
        seed=seed,
        clock=Clock.ACCELERATED,
        session_date=session_date,
    )
    return produce_realtime(settings, plan, topic=topic, compression=compression)
