"""Drift z-scores against the trailing trading days, on the bundled real daily bars."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from quality.drift import DriftError, daily_values, raise_on_drift, window_dates, zscore_alerts
from stocklake.governance import DRIFT_ALERTS_COLUMNS, Dataset
from stocklake.settings import load_settings
from tests.quality.data import daily_metrics


@pytest.fixture(scope="module")
def values() -> pd.DataFrame:
    return daily_values(daily_metrics())


def alerts_on(values: pd.DataFrame, day: date) -> list[dict]:
    return zscore_alerts(
        values, day, dataset=Dataset.DAILY_METRICS, run_id="r", threshold=3.0, window_days=60
    )


def test_ten_times_the_volume_is_an_alert(values: pd.DataFrame) -> None:
    day = date(2020, 12, 31)
    assert alerts_on(values, day) == []
    spiked = values.copy()
    today = (spiked["symbol"] == "AAPL") & (spiked["trade_date"] == day)
    spiked.loc[today, "volume"] *= 10
    (alert,) = alerts_on(spiked, day)
    assert tuple(alert) == tuple(name for name, _ in DRIFT_ALERTS_COLUMNS)
    past = values[(values["symbol"] == "AAPL") & (values["trade_date"] < day)].tail(60)
    assert (alert["symbol"], alert["metric"], alert["trade_date"]) == ("AAPL", "volume", day)
    assert alert["observed"] == pytest.approx(10 * values.loc[today, "volume"].item())
    assert alert["mean"] == pytest.approx(past["volume"].mean())
    assert alert["stddev"] == pytest.approx(past["volume"].std())
    assert alert["zscore"] > 3 and (alert["threshold"], alert["window_days"]) == (3.0, 60)


def test_real_outliers_at_the_default_threshold(values: pd.DataFrame) -> None:
    # 2020-12-18: Tesla joined the S&P 500 (222 M shares, z = 11.2) on a quadruple-witching
    # day (Alphabet's volume, z = 3.9): real outliers, reported as such.
    found = {(a["symbol"], a["metric"]) for a in alerts_on(values, date(2020, 12, 18))}
    assert found == {("TSLA", "volume"), ("GOOGL", "volume")}
    # 2020-02-25, the second day of the Covid sell-off: the S&P 500's range, z = 9.3.
    sell_off = alerts_on(values, date(2020, 2, 25))
    assert ("^GSPC", "range") in {(a["symbol"], a["metric"]) for a in sell_off}


def test_too_little_history_gives_no_zscore(values: pd.DataFrame) -> None:
    def spiked_on(day: date) -> list[dict]:
        spiked = values.copy()
        spiked.loc[(spiked["symbol"] == "AAPL") & (spiked["trade_date"] == day), "volume"] *= 100
        return [a for a in alerts_on(spiked, day) if a["symbol"] == "AAPL"]

    assert spiked_on(date(2019, 1, 25)) == []  # 16 trading days before it in the files
    assert [a["metric"] for a in spiked_on(date(2019, 2, 4))] == ["volume"]  # 22 before


def test_the_window_is_trading_days_and_severity_is_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    days = window_dates(date(2020, 12, 31), 60)
    assert len(days) == 61 and days[-1] == date(2020, 12, 31)
    # Oct 6-30: 19 sessions, November 20 (Thanksgiving), Dec 1-30: 21 (Christmas).
    assert date(2020, 12, 25) not in days and days[0] == date(2020, 10, 6)
    alert = {"symbol": "AAPL", "trade_date": date(2020, 12, 31), "metric": "volume"}
    alert |= {"observed": 1e9, "mean": 1e8, "stddev": 2e7, "zscore": 45.0}
    raise_on_drift(load_settings(), [alert])  # warn: no error
    monkeypatch.setenv("DRIFT_SEVERITY", "fail")
    with pytest.raises(DriftError, match="AAPL 2020-12-31 volume=1e"):
        raise_on_drift(load_settings(), [alert])
