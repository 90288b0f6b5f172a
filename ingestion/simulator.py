"""Real-time tick simulator: GBM prices per symbol, U-shaped sizes, two clocks.

`simulate_ticks` is pure: ticks come out evenly spaced in simulated time,
`tick_seconds` apart, each for a symbol drawn by the seeded generator. It
never looks at the wall clock, so the same arguments give the same ticks.
`Pacer` holds them back to `--rate` ticks per wall second when a producer
sends them; the clock decides how much simulated time a tick stands for:

- accelerated: a 6.5 h session takes SESSION_SECONDS / speedup of wall time
  (60 s by default, so 15-minute and 1-hour windows fill fast); after the
  close the simulation moves to the next weekday's open.
- live: simulated time is wall time from the moment the run starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ingestion.gbm import (
    DEFAULT_DRIFT,
    DEFAULT_VOLATILITY,
    TRADING_SECONDS_PER_YEAR,
    gbm_factor,
    start_price,
    symbol_rng,
    u_shape,
)
from ingestion.market_hours import (
    EXCHANGE_TZ,
    SESSION_SECONDS,
    next_weekday,
    session_close_utc,
    session_fraction,
    session_open_utc,
)
from stocklake.schemas import SIMULATOR_SOURCE, Clock, RealtimeTick

# Accelerated clock: one 6.5 h session in about one minute of wall time.
ACCELERATED_SPEEDUP = SESSION_SECONDS / 60.0
DEFAULT_LOT = 100
# Simulated spacing when no wall rate decides it (`--rate 0`): as at 1000 ticks/s accelerated.
UNPACED_TICK_SECONDS = ACCELERATED_SPEEDUP / 1000.0


def tick_spacing(rate: float, clock: Clock) -> float:
    """Simulated seconds between ticks for `rate` ticks per wall second on `clock`."""
    if rate < 0:
        raise ValueError(f"--rate must be >= 0, got {rate}")
    if rate == 0:
        return UNPACED_TICK_SECONDS if clock == Clock.ACCELERATED else 0.001
    return (ACCELERATED_SPEEDUP if clock == Clock.ACCELERATED else 1.0) / rate


def simulate_ticks(
    symbols: Sequence[str],
    *,
    seed: int = 0,
    start: datetime,
    tick_seconds: float = UNPACED_TICK_SECONDS,
    count: int | None = None,
    sessions_only: bool = True,
    drift: float = DEFAULT_DRIFT,
    volatility: float = DEFAULT_VOLATILITY,
    start_prices: dict[str, float] | None = None,
    lot: int = DEFAULT_LOT,
) -> Iterator[RealtimeTick]:
    """Ticks from `start` (UTC), `tick_seconds` of simulated time apart; endless if no count.

    With `sessions_only`, time jumps from each close to the next weekday's
    open (accelerated replay); without, it runs straight on (live clock).
    Sequence numbers start at 1 for each symbol.
    """
    if not symbols:
        raise ValueError("no symbols to simulate")
    if tick_seconds <= 0:
        raise ValueError(f"tick_seconds must be > 0, got {tick_seconds}")
    symbols = list(dict.fromkeys(symbol.upper() for symbol in symbols))
    pick_rng = symbol_rng(seed, "|".join(symbols), "ticks:pick")
    rngs = {symbol: symbol_rng(seed, symbol, "ticks") for symbol in symbols}
    prices = {
        symbol: (start_prices or {}).get(symbol) or start_price(symbol, seed) for symbol in symbols
    }
    last_seen: dict[str, datetime] = {}
    sequence = dict.fromkeys(symbols, 0)
    base_size = {symbol: float(rngs[symbol].uniform(1.0, 8.0)) for symbol in symbols}
    moment, close = _session_from(start.astimezone(UTC)) if sessions_only else (start, None)
    emitted = 0
    while count is None or emitted < count:
        if close is not None and moment >= close:
            moment = session_open_utc(next_weekday(close.date()))
            close = session_close_utc(moment.date())
            # The overnight gap is not trading time: prices resume where they closed.
            last_seen = dict.fromkeys(last_seen, moment)
        symbol = symbols[int(pick_rng.integers(len(symbols)))]
        rng = rngs[symbol]
        previous = last_seen.get(symbol, moment)
        dt_years = (moment - previous).total_seconds() / TRADING_SECONDS_PER_YEAR
        if dt_years > 0:
            prices[symbol] *= gbm_factor(dt_years, drift, volatility, float(rng.standard_normal()))
        last_seen[symbol] = moment
        sequence[symbol] += 1
        fraction = session_fraction(moment)
        activity = u_shape(fraction) if fraction is not None else 1.0
        lots = max(1, round(base_size[symbol] * activity * float(rng.lognormal(0.0, 0.5))))
        yield RealtimeTick(
            symbol=symbol,
            event_time=moment,
            price=round(prices[symbol], 4),
            size=lots * lot,
            sequence=sequence[symbol],
            source=SIMULATOR_SOURCE,
        )
        emitted += 1
        moment += timedelta(seconds=tick_seconds)


def _session_from(moment: datetime) -> tuple[datetime, datetime]:
    """(first tick time, session close): `moment` if it is in a session, else the next open."""
    day = moment.astimezone(EXCHANGE_TZ).date()
    if day.weekday() < 5 and moment < session_close_utc(day):
        return max(moment, session_open_utc(day)), session_close_utc(day)
    day = next_weekday(day)
    return session_open_utc(day), session_close_utc(day)


def accelerated_start(session_date: date) -> datetime:
    """The accelerated replay begins at the session's open."""
    if session_date.weekday() >= 5:
        raise ValueError(f"--start {session_date} is a {session_date:%A}; pick a weekday")
    return session_open_utc(session_date)


@dataclass
class Pacer:
    """Holds tick number i back until `i / rate` wall seconds after the first one.

    Pacing by count, not by event time, keeps the overnight jump of the
    accelerated clock from stalling the run; rate 0 means no pacing.
    """

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall_start: float | None = None

    def wait_for(self, index: int) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        if self.wall_start is None:
            self.wall_start = now
        due = self.wall_start + index / self.rate
        if due > now:
            self.sleep(due - now)
