"""yfinance source: parsing recorded chart answers and frames; never touches the network.

The replay tests run the real yfinance code with its HTTP layer swapped for
the chart-API bodies in fixtures/ (see fixtures/README.md for their origin).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from ingestion import yahoo
from ingestion.market_hours import DateRange
from ingestion.sources import collect_historical
from tests.streaming.records import parse_record

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LAST_WEEK_2020 = DateRange(date(2020, 12, 24), date(2021, 1, 1))


def test_daily_answer_becomes_bars_at_midnight_utc(yahoo_replay):
    bars = yahoo.fetch_history("AAPL", "1d", days=LAST_WEEK_2020, ingested_at=NOW)
    assert [bar.ts.date() for bar in bars] == [
        date(2020, 12, 24),
        date(2020, 12, 28),
        date(2020, 12, 29),
        date(2020, 12, 30),
        date(2020, 12, 31),
    ]
    assert all(bar.ts.tzinfo == UTC and bar.ts.hour == 0 for bar in bars)
    assert bars[-1].close == pytest.approx(132.69, abs=0.005)
    assert bars[-1].adj_close is not None
    assert {bar.source for bar in bars} == {"yfinance"}
    assert all("chart/AAPL" in url for url in yahoo_replay)
    for bar in bars:
        assert parse_record("historical", bar.to_json()) == bar


def test_intraday_answer_is_converted_to_utc_and_null_minutes_skipped(yahoo_replay):
    bars = yahoo.fetch_history(
        "META", "1m", days=DateRange(date(2019, 5, 20), date(2019, 5, 21)), ingested_at=NOW
    )
    # Ten minutes in the answer, one of them all-null (no trade): nine bars.
    assert len(bars) == 9
    assert bars[0].ts == datetime(2019, 5, 20, 13, 30, tzinfo=UTC)
    assert bars[0].open == pytest.approx(181.62)
    assert datetime(2019, 5, 20, 13, 33, tzinfo=UTC) not in {bar.ts for bar in bars}


def test_empty_answer_is_an_error_naming_the_symbol(yahoo_replay):
    with pytest.raises(yahoo.YahooError, match=r"^WEEKEND: Yahoo has no data") as caught:
        yahoo.fetch_history("WEEKEND", "1d", days=LAST_WEEK_2020, ingested_at=NOW)
    assert caught.value.symbol == "WEEKEND"


def test_error_answer_for_unknown_symbol_is_not_retried(yahoo_replay):
    slept: list[float] = []
    with pytest.raises(yahoo.YahooError, match=r"^NOSUCH: ") as caught:
        yahoo.fetch_history(
            "NOSUCH", "1d", days=LAST_WEEK_2020, ingested_at=NOW, sleep=slept.append
        )
    assert slept == []
    assert "404" in str(caught.value) or "no data" in str(caught.value)


def test_network_errors_are_retried_with_backoff_then_reported(caplog):
    attempts: list[str] = []
    slept: list[float] = []

    def offline(symbol, interval, days, period):
        attempts.append(symbol)
        raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")

    with pytest.raises(yahoo.YahooError, match=r"^MSFT: Yahoo unreachable after 4 attempts"):
        yahoo.fetch_history(
            "MSFT", "1d", ingested_at=NOW, history=offline, retries=3, sleep=slept.append
        )
    assert len(attempts) == 4
    assert slept == [1.0, 2.0, 4.0]
    # Each retry is logged, naming the symbol, the error, the count and the wait.
    retries = [r.getMessage() for r in caplog.records if r.name == "ingestion.yahoo"]
    assert retries == [
        f"MSFT: Could not resolve host: query2.finance.yahoo.com; retry {n}/3 in {wait}s"
        for n, wait in ((1, "1.0"), (2, "2.0"), (3, "4.0"))
    ]


def test_a_transient_error_then_success(yahoo_replay):
    from yfinance.exceptions import YFRateLimitError

    failures = [YFRateLimitError()]
    slept: list[float] = []

    def flaky(symbol, interval, days, period):
        if failures:
            raise failures.pop()
        return yahoo._default_history(symbol, interval, days, period)

    bars = yahoo.fetch_history(
        "AAPL", "1d", days=LAST_WEEK_2020, ingested_at=NOW, history=flaky, sleep=slept.append
    )
    assert len(bars) == 5 and slept == [1.0]


def _frame(index, **columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.DatetimeIndex(index))


def test_frame_with_tz_aware_daily_index():
    frame = _frame(
        pd.to_datetime(["2024-03-08", "2024-03-11"]).tz_localize("America/New_York"),
        Open=[10.0, 11.0],
        High=[12.0, 12.0],
        Low=[9.0, 10.5],
        Close=[11.0, 11.5],
        **{"Adj Close": [10.9, 11.4]},
        Volume=[1000, 2000],
    )
    bars = yahoo.frame_to_bars("ABC", frame, "1d", NOW)
    # Across the DST change (2024-03-10) each bar still lands on its trade date at 00:00 UTC.
    assert [bar.ts for bar in bars] == [
        datetime(2024, 3, 8, tzinfo=UTC),
        datetime(2024, 3, 11, tzinfo=UTC),
    ]
    assert [bar.adj_close for bar in bars] == [10.9, 11.4]


def test_frame_intraday_tz_aware_and_naive_index():
    aware = _frame(
        pd.to_datetime(["2024-07-01 09:30", "2024-07-01 10:30"]).tz_localize("America/New_York"),
        Open=[1.0, 1.1],
        High=[1.2, 1.2],
        Low=[0.9, 1.0],
        Close=[1.1, 1.15],
        Volume=[10.0, 20.0],
    )
    naive = aware.tz_localize(None)
    for frame in (aware, naive):
        bars = yahoo.frame_to_bars("ABC", frame, "1h", NOW)
        assert [bar.ts for bar in bars] == [
            datetime(2024, 7, 1, 13, 30, tzinfo=UTC),
            datetime(2024, 7, 1, 14, 30, tzinfo=UTC),
        ]
        assert bars[0].adj_close is None and bars[1].volume == 20


def test_frame_errors_name_the_symbol():
    empty = pd.DataFrame(columns=["Open", "High", "Low", "Close", "Volume"])
    with pytest.raises(yahoo.YahooError, match=r"^ZZZ: Yahoo returned no rows"):
        yahoo.frame_to_bars("ZZZ", empty, "1d", NOW)
    index = pd.to_datetime(["2024-03-08"]).tz_localize("America/New_York")
    partial = _frame(index, Open=[1.0], High=[float("nan")], Low=[1.0], Close=[1.0], Volume=[5])
    with pytest.raises(yahoo.YahooError, match=r"^ZZZ: bad row at 2024-03-08.*missing values"):
        yahoo.frame_to_bars("ZZZ", partial, "1d", NOW)
    inverted = _frame(index, Open=[1.0], High=[0.5], Low=[1.0], Close=[1.0], Volume=[5])
    with pytest.raises(yahoo.YahooError, match=r"OHLC inconsistent"):
        yahoo.frame_to_bars("ZZZ", inverted, "1d", NOW)
    no_volume = _frame(index, Open=[1.0], High=[1.0], Low=[1.0], Close=[1.0])
    with pytest.raises(yahoo.YahooError, match=r"no Volume column"):
        yahoo.frame_to_bars("ZZZ", no_volume, "1d", NOW)


def test_collect_stops_at_the_first_bad_symbol(yahoo_replay):
    with pytest.raises(yahoo.YahooError, match=r"^NOSUCH: "):
        collect_historical(
            "yfinance",
            symbols=["AAPL", "NOSUCH"],
            start=LAST_WEEK_2020.start,
            end=LAST_WEEK_2020.end,
            sleep=lambda _s: None,
        )


def test_allow_empty_skips_a_symbol_without_bars_but_not_an_unknown_one(yahoo_replay):
    batch = collect_historical(
        "yfinance",
        symbols=["AAPL", "WEEKEND"],
        start=LAST_WEEK_2020.start,
        end=LAST_WEEK_2020.end,
        allow_empty=True,
    )
    assert {bar.symbol for bar in batch.bars} == {"AAPL"}
    assert batch.notes == [batch.notes[0]] and batch.notes[0].startswith("skipped WEEKEND:")
    with pytest.raises(yahoo.YahooError, match=r"^NOSUCH: "):
        collect_historical(
            "yfinance",
            symbols=["NOSUCH"],
            start=LAST_WEEK_2020.start,
            end=LAST_WEEK_2020.end,
            allow_empty=True,
            sleep=lambda _s: None,
        )
