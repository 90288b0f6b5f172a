"""Planning a simulator run: which ticks, how fast, on which clock (pure: nothing is sent).

- `plan_realtime`: the CLI's options (--count or --duration, --clock, --start).
- `plan_interval`: ticks whose event times spread evenly over a given interval.
- `plan_scheduled_run`: what one scheduled (Airflow) run sends, from its data interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ingestion.errors import ProduceError
from ingestion.gbm import gbm_overrides
from ingestion.market_hours import most_recent_weekday
from ingestion.simulator import accelerated_start, simulate_ticks, tick_spacing
from ingestion.yahoo import DEFAULT_SYMBOLS
from stocklake.schemas import Clock, RealtimeTick


@dataclass(frozen=True)
class RealtimePlan:
    """A simulator run: which ticks, how fast, on which clock."""

    symbols: tuple[str, ...]
    rate: float
    count: int | None
    seed: int
    clock: Clock
    start: datetime
    tick_seconds: float
    drift: float | None = None
    volatility: float | None = None

    def ticks(self) -> Iterable[RealtimeTick]:
        return simulate_ticks(
            self.symbols,
            seed=self.seed,
            start=self.start,
            tick_seconds=self.tick_seconds,
            count=self.count,
            sessions_only=self.clock == Clock.ACCELERATED,
            **gbm_overrides(self.drift, self.volatility),
        )


def _symbols(symbols: Sequence[str]) -> tuple[str, ...]:
    """Upper-case, stripped, each once, in the given order; none at all is an error."""
    cleaned = tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
    if not cleaned:
        raise ProduceError("--symbols is empty")
    return cleaned


def _tick_count(rate: float, count: int | None, duration: float | None) -> int:
    """--count, or --duration seconds at --rate ticks per second (exactly one of them)."""
    if count is not None and duration is not None:
        raise ProduceError("give either --count or --duration, not both")
    if count is None and duration is None:
        raise ProduceError("give --count N or --duration SECONDS")
    if count is not None and count <= 0:
        raise ProduceError(f"--count must be positive, got {count}")
    if duration is not None:
        if duration <= 0:
            raise ProduceError(f"--duration must be positive, got {duration}")
        if rate <= 0:
            raise ProduceError("--duration needs a --rate above 0 (rate 0 is unpaced: use --count)")
        count = max(1, round(duration * rate))
    if rate < 0:
        raise ProduceError(f"--rate must be >= 0, got {rate}")
    assert count is not None
    return count


def _clock_start(clock: Clock | str, session_date: date | None, now: datetime) -> datetime:
    """The first tick's event time: the session's open (accelerated) or now (live)."""
    if clock == Clock.ACCELERATED:
        day = session_date or most_recent_weekday(now.date())
        try:
            return accelerated_start(day)
        except ValueError as error:
            raise ProduceError(str(error)) from None
    if clock == Clock.LIVE:
        if session_date is not None:
            raise ProduceError("--start applies to --clock accelerated; live ticks are stamped now")
        return now
    raise ProduceError(f"--clock {clock!r} is not live or accelerated")


def plan_realtime(
    symbols: Sequence[str],
    *,
    rate: float,
    count: int | None = None,
    duration: float | None = None,
    seed: int = 0,
    clock: Clock | str = Clock.ACCELERATED,
    session_date: date | None = None,
    drift: float | None = None,
    volatility: float | None = None,
    now: datetime | None = None,
) -> RealtimePlan:
    """Turn CLI-style options into a plan; `--duration` becomes a count at `--rate`."""
    count = _tick_count(rate, count, duration)
    symbols = _symbols(symbols)
    start = _clock_start(clock, session_date, now or datetime.now(UTC))
    return RealtimePlan(
        symbols=symbols,
        rate=rate,
        count=count,
        seed=seed,
        clock=Clock(clock),
        start=start,
        tick_seconds=tick_spacing(rate, Clock(clock)),
        drift=drift,
        volatility=volatility,
    )


def plan_interval(
    symbols: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    count: int,
    rate: float = 0,
    seed: int = 0,
    drift: float | None = None,
    volatility: float | None = None,
) -> RealtimePlan:
    """`count` ticks whose event times spread evenly over [start, end).

    For scheduled runs: each run simulates exactly its own data interval, so
    consecutive runs form one continuous feed and windows close as it advances.
    """
    if count <= 0:
        raise ProduceError(f"count must be positive, got {count}")
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise ProduceError(f"[{start}, {end}) is not a time-zone-aware, non-empty interval")
    return RealtimePlan(
        symbols=_symbols(symbols),
        rate=rate,
        count=count,
        seed=seed,
        clock=Clock.INTERVAL,
        # A plain UTC datetime (Airflow hands over pendulum ones).
        start=datetime.fromtimestamp(start.timestamp(), tz=UTC),
        tick_seconds=(end - start).total_seconds() / count,
        drift=drift,
        volatility=volatility,
    )


def interval_seed(end: datetime) -> int:
    """A scheduled run's seed, from its interval's end: a re-run replays the same ticks."""
    return int(end.timestamp()) % 2**31


def plan_scheduled_run(
    symbols: Sequence[str],
    *,
    clock: Clock | str,
    rate: int,
    seconds: int,
    start: datetime,
    end: datetime,
) -> RealtimePlan:
    """The ticks of one scheduled run over its data interval [start, end).

    `rate * seconds` ticks (`seconds` of wall time at `rate`), seeded by the
    interval (`interval_seed`), for `symbols` or the default set. The clock says
    what their event times are: interval, spread over [start, end) (consecutive
    runs are one continuous feed); accelerated, a replay of the interval's
    trading day (a re-run replays the same session); live, stamped now.
    """
    symbols = list(symbols) or list(DEFAULT_SYMBOLS)
    seed = interval_seed(end)
    if clock == Clock.INTERVAL:
        return plan_interval(
            symbols, start=start, end=end, count=rate * seconds, rate=rate, seed=seed
        )
    accelerated = clock == Clock.ACCELERATED
    return plan_realtime(
        symbols,
        rate=rate,
        duration=float(seconds),
        seed=seed,
        clock=clock,
        session_date=most_recent_weekday(end.date()) if accelerated else None,
    )
