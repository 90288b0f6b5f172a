"""Historical bars from Yahoo Finance through yfinance.

`frame_to_bars` is the pure part (a yfinance history DataFrame -> contract
records); `fetch_history` does the network call with retries and turns
yfinance's quiet failures (an empty frame, a logged error) into a
YahooError that names the symbol.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pandas as pd
import tenacity
from pydantic import ValidationError

from ingestion.market_hours import EXCHANGE_TZ, DateRange, daily_bar_ts
from stocklake.schemas import HistoricalBar, HistoricalSource, Interval

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN", "META", "TSLA", "NVDA")

log = logging.getLogger(__name__)


class YahooError(RuntimeError):
    """Yahoo gave no usable bars for a symbol; the message names it and says why."""

    def __init__(self, symbol: str, message: str) -> None:
        super().__init__(f"{symbol}: {message}")
        self.symbol = symbol


class YahooNoBars(YahooError):
    """Yahoo knows the symbol but has no bar in the range (a holiday, a weekend)."""


def frame_to_bars(
    symbol: str, frame: pd.DataFrame, interval: str, ingested_at: datetime
) -> list[HistoricalBar]:
    """Turn a `Ticker.history(auto_adjust=False)` frame into bars.

    Daily rows are indexed at midnight exchange time: their trade date becomes
    00:00 UTC. Intraday rows are converted to UTC. Rows Yahoo left all-NaN
    (halted or not yet traded) are skipped; a partly missing row is an error.
    """
    if frame.empty:
        raise YahooNoBars(symbol, "Yahoo returned no rows")
    missing = [name for name in ("Open", "High", "Low", "Close", "Volume") if name not in frame]
    if missing:
        raise YahooError(symbol, f"Yahoo's frame has no {', '.join(missing)} column")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise YahooError(symbol, f"Yahoo's frame is indexed by {type(index).__name__}, not time")
    if index.tz is None:
        # yfinance always localises to the exchange zone; a naive index is exchange time too.
        index = index.tz_localize(EXCHANGE_TZ)
    columns = [frame[name].tolist() for name in ("Open", "High", "Low", "Close", "Volume")]
    adjusted = frame["Adj Close"].tolist() if "Adj Close" in frame else [None] * len(frame)
    bars = []
    for stamp, *ohlcv, adj in zip(index, *columns, adjusted, strict=True):
        if all(_is_missing(v) for v in ohlcv[:4]):
            continue
        ts = daily_bar_ts(stamp.date()) if interval == Interval.D1 else stamp.tz_convert(UTC)
        try:
            if any(_is_missing(v) for v in ohlcv):
                raise ValueError(f"missing values in {dict(zip(_OHLCV, ohlcv, strict=True))}")
            bars.append(
                HistoricalBar(
                    symbol=symbol,
                    ts=ts.to_pydatetime() if isinstance(ts, pd.Timestamp) else ts,
                    interval=interval,
                    open=float(ohlcv[0]),
                    high=float(ohlcv[1]),
                    low=float(ohlcv[2]),
                    close=float(ohlcv[3]),
                    adj_close=None if _is_missing(adj) else float(adj),
                    volume=_whole_volume(ohlcv[4]),
                    source=HistoricalSource.YFINANCE,
                    ingested_at=ingested_at,
                )
            )
        except (ValueError, ValidationError) as error:
            raise YahooError(symbol, f"bad row at {stamp.isoformat()}: {error}") from None
    if not bars:
        raise YahooNoBars(symbol, "Yahoo returned only empty (NaN) rows")
    return bars


_OHLCV = ("open", "high", "low", "close", "volume")


def _whole_volume(value: object) -> int:
    number = float(value)  # type: ignore[arg-type]
    if number != int(number):
        raise ValueError(f"volume {value!r} is not a whole number of shares")
    return int(number)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _http_status(error: BaseException) -> int | None:
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _is_network_error(error: BaseException) -> bool:
    """Worth retrying: connection, DNS, timeout, 429 and 5xx (curl_cffi errors are OSErrors).

    An HTTP 4xx answer (say 404 for an unknown symbol) is Yahoo's verdict, not a glitch.
    """
    from yfinance.exceptions import YFRateLimitError

    if isinstance(error, YFRateLimitError):
        return True
    status = _http_status(error)
    if status is not None and 400 <= status < 500:
        return status == 429
    return isinstance(error, OSError | TimeoutError)


@contextlib.contextmanager
def _yfinance_raises() -> Iterator[None]:
    """Make yfinance raise instead of logging and returning an empty frame."""
    import yfinance as yf

    before = yf.config.debug.hide_exceptions
    yf.config.debug.hide_exceptions = False
    try:
        yield
    finally:
        yf.config.debug.hide_exceptions = before


def _default_history(
    symbol: str, interval: str, days: DateRange | None, period: str | None
) -> pd.DataFrame:
    import yfinance as yf

    # Yahoo names its intervals as the contract does (1d, 1h, 5m, 1m).
    kwargs: dict[str, object] = {"interval": Interval(interval).value, "auto_adjust": False}
    if days is not None:
        kwargs.update(start=days.start.isoformat(), end=days.end.isoformat())
    else:
        kwargs["period"] = period or "1mo"
    with _yfinance_raises():
        return yf.Ticker(symbol).history(actions=False, **kwargs)


HistoryFetcher = Callable[[str, str, DateRange | None, str | None], pd.DataFrame]


def fetch_history(
    symbol: str,
    interval: str,
    *,
    days: DateRange | None = None,
    period: str | None = None,
    ingested_at: datetime,
    retries: int = 4,
    backoff_seconds: float = 1.0,
    history: HistoryFetcher = _default_history,
    sleep: Callable[[float], None] = time.sleep,
) -> list[HistoricalBar]:
    """Bars of one symbol; network errors are retried with exponential backoff.

    An unknown symbol or an empty answer is not retried: it raises YahooError
    at once. `history` and `sleep` are parameters so tests can replay
    recorded answers without the network or the waiting.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_network_error),
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff_seconds),
        before_sleep=_log_retry(symbol, retries),
        sleep=sleep,
    )
    try:
        frame = retrying(history, symbol, interval, days, period)
    except tenacity.RetryError as exhausted:
        last = exhausted.last_attempt
        error = last.exception()
        raise YahooError(
            symbol,
            f"Yahoo unreachable after {last.attempt_number} attempts ({type(error).__name__}: "
            f"{error}); offline? use --source csv or --source synthetic",
        ) from None
    except Exception as error:
        verdict = _yahoo_verdict(symbol, error)
        if verdict is None:
            raise
        raise verdict from None
    return frame_to_bars(symbol, frame, interval, ingested_at)


def _log_retry(symbol: str, retries: int) -> Callable[[tenacity.RetryCallState], None]:
    """tenacity's before-sleep hook: one warning per retry, naming the symbol and the wait."""

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s; retry %d/%d in %.1fs", symbol, error, state.attempt_number, retries, delay
        )

    return log_retry


def _yahoo_verdict(symbol: str, error: Exception) -> YahooError | None:
    """What a failure that is not retried means, as a YahooError (None: not Yahoo's answer)."""
    from yfinance.exceptions import YFException, YFPricesMissingError

    if isinstance(error, YFPricesMissingError):
        # The symbol has a time zone (so Yahoo knows it) but no bar in the range.
        return YahooNoBars(symbol, f"Yahoo has no data: {_yahoo_reason(error)}")
    if isinstance(error, YFException):
        return YahooError(symbol, f"Yahoo has no data: {_yahoo_reason(error)}")
    status = _http_status(error)
    if status is not None:
        return YahooError(symbol, f"Yahoo answered HTTP {status}: unknown or delisted symbol?")
    return None


def _yahoo_reason(error: BaseException) -> str:
    text = str(error)
    # yfinance prefixes "$SYMBOL: "; the symbol is already in YahooError's message.
    return text.split(": ", 1)[1] if text.startswith("$") and ": " in text else text
