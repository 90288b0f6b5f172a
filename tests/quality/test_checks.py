"""Each check fires on a hand-made bad partition and passes on the bundled real data."""

from __future__ import annotations

import random
from datetime import date

import pandas as pd
import pytest

from quality.checks import (
    CheckContext,
    checksum,
    duplicate_timestamps,
    keys_not_null,
    keys_unique,
    ohlc_consistent,
    partition_checksum,
    row_counts,
    volume_non_negative,
)
from quality.continuity import daily_continuity, minute_continuity
from quality.run import QualityError, check_frame, expected_rows, failures, raise_on_failures
from quality.suite import SUITE
from stocklake.governance import QUALITY_RESULTS_COLUMNS, Dataset, rows_checksum
from stocklake.settings import Settings, SettingsError, load_settings
from tests.quality.data import daily_bars, daily_metrics, minute_bars

DEFAULT_FAIL = Settings.model_fields["quality_fail_checks"].default.split(",")
RAW_BARS, METRICS = SUITE[Dataset.RAW_BARS], SUITE[Dataset.DAILY_METRICS]


def ctx(dataset: Dataset = Dataset.DAILY_METRICS, fail: list[str] = DEFAULT_FAIL) -> CheckContext:
    return CheckContext("run-1", dataset, "processed/historical/date=2020-12-31/", fail)


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    return daily_metrics()


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    frames = [daily_bars("AAPL"), daily_bars("TSLA"), minute_bars()]
    # The minute bars' adj_close is all null: concatenated apart (pandas warns otherwise).
    bars = pd.concat([frame.drop(columns="adj_close") for frame in frames], ignore_index=True)
    adj_close = [value for frame in frames for value in frame["adj_close"].astype(float)]
    return bars.assign(adj_close=adj_close)


def last_day(metrics: pd.DataFrame) -> tuple[pd.DataFrame, tuple[pd.DataFrame, str]]:
    """2020-12-31's metrics, and its raw bars as the row counts' source."""
    day = metrics[metrics["trade_date"] == date(2020, 12, 31)]
    bars = pd.concat([daily_bars(symbol) for symbol in day["symbol"]])
    return day, (bars[bars["ts"].dt.date == date(2020, 12, 31)], "raw/historical")


def test_a_result_row_has_exactly_the_contract_columns(metrics: pd.DataFrame) -> None:
    day, source = last_day(metrics)
    rows = check_frame(day, METRICS, ctx(), source=source)
    assert {row["status"] for row in rows} == {"passed"}
    assert [row["check_name"] for row in rows] == [check.value for check in METRICS.checks]
    for row in rows:
        assert tuple(row) == tuple(name for name, _ in QUALITY_RESULTS_COLUMNS)


def test_keys_not_null(metrics: pd.DataFrame) -> None:
    assert keys_not_null(metrics, METRICS, ctx())["status"] == "passed"
    bad = metrics.head(3).copy()
    bad.loc[1, "symbol"] = None
    row = keys_not_null(bad, METRICS, ctx())
    assert (row["status"], row["severity"], row["observed"]) == ("failed", "fail", "1")
    assert "symbol" in row["detail"]


def test_keys_unique(metrics: pd.DataFrame) -> None:
    assert keys_unique(metrics, METRICS, ctx())["status"] == "passed"
    bad = pd.concat([metrics.head(3), metrics.iloc[[1]]], ignore_index=True)
    row = keys_unique(bad, METRICS, ctx())
    assert (row["status"], row["observed"]) == ("failed", "1")
    assert "AAPL, 2019-01-03" in row["detail"]


def test_duplicate_timestamps(raw: pd.DataFrame) -> None:
    assert duplicate_timestamps(raw, RAW_BARS, ctx(Dataset.RAW_BARS))["status"] == "passed"
    bad = pd.concat([raw, raw.iloc[[5, 5]]], ignore_index=True)
    row = duplicate_timestamps(bad, RAW_BARS, ctx(Dataset.RAW_BARS))
    assert (row["status"], row["severity"], row["observed"]) == ("warned", "warn", "2")


def test_ohlc_consistent(raw: pd.DataFrame, metrics: pd.DataFrame) -> None:
    assert ohlc_consistent(raw, RAW_BARS, ctx(Dataset.RAW_BARS))["status"] == "passed"
    assert ohlc_consistent(metrics, METRICS, ctx())["status"] == "passed"
    bad = metrics.head(4).copy()
    bad.loc[2, "daily_low"] = bad.loc[2, "daily_open"] + 1  # low above the open
    row = ohlc_consistent(bad, METRICS, ctx())
    assert (row["status"], row["observed"]) == ("failed", "1")


def test_volume_non_negative(raw: pd.DataFrame, metrics: pd.DataFrame) -> None:
    assert volume_non_negative(raw, RAW_BARS, ctx(Dataset.RAW_BARS))["status"] == "passed"
    assert volume_non_negative(metrics, METRICS, ctx())["status"] == "passed"
    bad = metrics.head(4).copy()
    bad.loc[0, "daily_volume"] = -1
    row = volume_non_negative(bad, METRICS, ctx())
    assert (row["status"], row["observed"]) == ("failed", "1")


def test_minute_continuity_reports_the_real_files_oddities() -> None:
    row = minute_continuity(minute_bars(), "ts", ctx(Dataset.RAW_BARS))
    # Every day has a bar at 16:00 ET (the close: no session minute), 2019-05-20 thus 391
    # bars; four days miss one minute each.
    assert (row["status"], row["severity"]) == ("warned", "warn")
    assert row["observed"] == "4 missing minutes, 5 bars outside the session"
    assert "META 2019-05-20: 391 bars, 1 outside the session (16:00)" in row["detail"]
    for day, minute in (("21", "09:34"), ("22", "09:37"), ("23", "09:49"), ("24", "09:32")):
        expected = f"META 2019-05-{day}: 390 bars, 1 missing ({minute}), 1 outside the session"
        assert expected in row["detail"]
    strict = minute_continuity(minute_bars(), "ts", ctx(fail=["minute_continuity"]))
    assert strict["status"] == "failed"


def test_minute_continuity_passes_a_full_session_and_knows_early_closes() -> None:
    bars = minute_bars()
    times = bars["ts"].dt.tz_convert("America/New_York")
    whole = bars[(bars["ts"].dt.day == 20) & (times.dt.hour < 16)]
    assert minute_continuity(whole, "ts", ctx())["status"] == "passed"
    # The day after Thanksgiving 2019 closed at 13:00 ET: 210 minutes are the whole session.
    start = pd.Timestamp("2019-11-29 09:30", tz="America/New_York")
    early = pd.DataFrame(
        {"symbol": "META", "ts": pd.date_range(start, periods=210, freq="min").tz_convert("UTC")}
    )
    assert minute_continuity(early, "ts", ctx())["status"] == "passed"
    at_close = pd.DataFrame(
        {"symbol": ["META"], "ts": [start.tz_convert("UTC") + pd.Timedelta(minutes=210)]}
    )
    late = minute_continuity(pd.concat([early, at_close]), "ts", ctx())
    assert late["observed"] == "0 missing minutes, 1 bars outside the session"
    assert "outside the session (13:00)" in late["detail"]


def test_daily_continuity_over_the_exchange_calendar() -> None:
    apple = daily_bars("AAPL")
    assert daily_continuity(apple, "ts", ctx())["status"] == "passed"
    row = daily_continuity(daily_bars("META"), "ts", ctx())
    # facebook.csv has no 2020-10-23 (a real gap); holidays and weekends are no gaps.
    assert (row["status"], row["observed"]) == ("warned", "1 gap(s)")
    assert row["detail"] == "META 2020-10-26: trading day(s) 2020-10-23 missing since 2020-10-22"
    # One date alone: the lake's last date of the symbol decides; None is its first row.
    day = apple[apple["ts"].dt.date == date(2020, 12, 31)]
    seen = {"AAPL": date(2020, 12, 30)}
    assert daily_continuity(day, "ts", ctx(), seen)["status"] == "passed"
    assert daily_continuity(day, "ts", ctx(), {"AAPL": None})["status"] == "passed"
    gap = daily_continuity(day, "ts", ctx(), {"AAPL": date(2020, 12, 24)})
    assert "2020-12-28, 2020-12-29, 2020-12-30 missing since 2020-12-24" in gap["detail"]
    weekend = day.assign(ts=pd.Timestamp("2021-01-02", tz="UTC"))
    assert "closed day (Saturday)" in daily_continuity(weekend, "ts", ctx())["detail"]


def test_row_counts(raw: pd.DataFrame, metrics: pd.DataFrame) -> None:
    day = raw[raw["ts"].dt.date == date(2019, 5, 21)]
    # AAPL's and TSLA's daily bars, META's minute bars: three symbol-days.
    assert expected_rows(METRICS, day) == (3, "symbol-days of bars")
    intraday = SUITE[Dataset.INTRADAY_FEATURES]
    assert expected_rows(intraday, day) == (390, "1-minute bars")
    assert row_counts(2, 2, "raw", ctx())["status"] == "passed"
    row = row_counts(2, 1, "s3://lake/raw/historical/year=2019/month=05/day=21/", ctx())
    assert (row["status"], row["observed"], row["expected"]) == ("failed", "1", "2")


def test_checksum_is_canonical_and_detects_a_change(metrics: pd.DataFrame) -> None:
    first = partition_checksum(metrics, METRICS)
    shuffled = metrics.sample(frac=1, random_state=3).reset_index(drop=True)
    assert partition_checksum(shuffled, METRICS) == first
    changed = metrics.copy()
    changed.loc[100, "daily_close"] += 0.01
    assert partition_checksum(changed, METRICS) != first
    # The warehouse's rows (tuples of Python values, in any order) hash the same.
    names = list(METRICS.column_names)
    rows = list(metrics[names].astype(object).itertuples(index=False, name=None))
    random.Random(5).shuffle(rows)
    assert rows_checksum(rows, METRICS.key_positions) == first
    assert checksum(metrics, METRICS, ctx(), None)["detail"] == "no earlier checksum stored"
    assert checksum(shuffled, METRICS, ctx(), first)["status"] == "passed"
    rerun = checksum(changed, METRICS, ctx(), first)
    assert (rerun["status"], rerun["severity"], rerun["expected"]) == ("warned", "warn", first)


def test_severity_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALITY_FAIL_CHECKS", "checksum, minute_continuity")
    settings = load_settings()
    assert settings.quality_fail_check_names == {"checksum", "minute_continuity"}
    context = CheckContext.of(settings, Dataset.RAW_BARS, "raw/historical/x/", "run-2")
    assert minute_continuity(minute_bars(), "ts", context)["status"] == "failed"
    bad = daily_bars("AAPL").head(2).assign(volume=-5)
    assert volume_non_negative(bad, RAW_BARS, context)["status"] == "warned"
    monkeypatch.setenv("QUALITY_FAIL_CHECKS", "keys_unique,no_such_check")
    with pytest.raises(SettingsError, match=r"QUALITY_FAIL_CHECKS.*no_such_check"):
        load_settings()


def test_failures_name_dataset_partition_check_and_observed(metrics: pd.DataFrame) -> None:
    day, source = last_day(metrics)
    bad = day.assign(daily_volume=[1, -1, 2, -3, 4, 5, 6])
    rows = check_frame(bad, METRICS, ctx(), source=source)
    (failed,) = failures(rows)
    assert failed["check_name"] == "volume_non_negative"
    with pytest.raises(QualityError) as raised:
        raise_on_failures(rows)
    message = str(raised.value)
    assert "daily_metrics processed/historical/date=2020-12-31/ volume_non_negative" in message
    assert "observed 2, expected 0" in message
    raise_on_failures(check_frame(day, METRICS, ctx(), source=source))
