"""The dashboard's statements: only validated values in SQL, portable spelling, and the
numbers they return from a warehouse of real bars (against pandas on the same CSVs)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pytest

from dashboard import queries
from loaders import SchemaNotFoundError
from stocklake.settings import get_settings, load_settings
from tests.dashboard import data


@pytest.fixture
def pg_settings():
    return load_settings(WAREHOUSE="postgres", WAREHOUSE_SCHEMA="dash_test")


@pytest.mark.parametrize("bad", ["aapl", "AAPL'; DROP TABLE x; --", "", "A B", "'"])
def test_symbols_must_follow_the_contract(bad: str) -> None:
    with pytest.raises(ValueError):
        queries.symbol_list(["AAPL", bad])


def test_symbols_and_dates_become_literals() -> None:
    assert queries.symbol_list(["^GSPC", "BRK.B"]) == "'^GSPC', 'BRK.B'"
    assert queries.date_literal(date(2020, 1, 2)) == "DATE '2020-01-02'"
    with pytest.raises(ValueError):
        queries.symbol_list([])
    with pytest.raises(ValueError):  # a datetime is not a date literal
        queries.date_literal(datetime(2020, 1, 2, 3, 4))


def statements(pg_settings) -> list[str]:
    days = (date(2020, 1, 1), date(2020, 12, 31))
    return [
        queries.bounds_sql(pg_settings),
        queries.symbols_sql(pg_settings),
        queries.overview_sql(pg_settings, ["AAPL", "TSLA"], *days),
        queries.weekly_overview_sql(pg_settings, ["AAPL", "TSLA"], *days),
        queries.bars_sql(pg_settings, "AAPL", *days),
        queries.features_sql(pg_settings, "AAPL", *days),
        queries.recent_windows_sql(pg_settings),
        queries.recent_loads_sql(pg_settings),
        *(queries.count_sql(pg_settings, name) for name in queries.COUNTED_TABLES),
    ]


def test_statements_are_portable_and_qualified(pg_settings) -> None:
    for statement in statements(pg_settings):
        assert "::" not in statement and "ILIKE" not in statement.upper(), statement
        assert ";" not in statement, statement
        assert " FROM dash_test." in statement, statement
    assert "double precision" in queries.overview_sql(pg_settings, ["A"], date.min, date.max)
    snowflake = load_settings(
        WAREHOUSE="snowflake",
        SNOWFLAKE_ACCOUNT="acct",
        SNOWFLAKE_USER="u",
        SNOWFLAKE_PASSWORD="p",
        SNOWFLAKE_DATABASE="db",
        SNOWFLAKE_SCHEMA="MARKET",
    )
    assert " FROM MARKET.daily_metrics" in queries.bounds_sql(snowflake)
    assert "DOUBLE)" in queries.overview_sql(snowflake, ["A"], date.min, date.max)


def test_only_dashboard_tables_are_named(pg_settings) -> None:
    with pytest.raises(ValueError):
        queries.table(pg_settings, "pg_authid")


def test_rows_become_a_frame_with_lower_case_names_and_floats() -> None:
    frame = queries.to_frame(["SYMBOL", "SHARE"], [("AAPL", Decimal("12.5")), ("TSLA", None)])
    assert list(frame.columns) == ["symbol", "share"]
    assert frame["share"].dtype == float and frame["share"].iloc[0] == 12.5


def test_failures_become_messages() -> None:
    missing = queries._problem(
        Exception('relation "s.daily_metrics" does not exist'), "daily_metrics"
    )
    assert isinstance(missing, queries.TableMissing) and "stocklake load daily" in missing.command
    gone = queries._problem(SchemaNotFoundError("schema 's' does not exist"), "daily_metrics")
    assert isinstance(gone, queries.WarehouseUnreachable) and "stocklake up" in gone.command
    refused = queries._problem(ConnectionRefusedError("refused"), "load_audit")
    assert isinstance(refused, queries.WarehouseUnreachable)
    other = queries._problem(ValueError("division by zero"), "load_audit")
    assert type(other) is queries.WarehouseProblem and "division by zero" in other.message


@pytest.fixture
def loaded(loaded_schema: str, dashboard_env):
    dashboard_env(loaded_schema)
    queries.clear_cache()
    return get_settings()


@pytest.mark.services
def test_overview_matches_the_csv_files(loaded) -> None:
    bars = data.daily_bars()
    start, end = date(2020, 3, 1), date(2020, 6, 30)
    chosen = ["AAPL", "TSLA", "^GSPC"]
    frame = queries.overview(loaded, chosen, start, end)
    assert frame.attrs["resolution"] == "day"
    expected = bars[bars["symbol"].isin(chosen) & bars["date"].between(str(start), str(end))]
    assert len(frame) == len(expected)
    shares = frame.groupby("period")["volume_share_pct"].sum()
    assert np.allclose(shares, 100.0)
    tsla = frame[frame["symbol"] == "TSLA"].set_index("period")
    csv = expected[expected["symbol"] == "TSLA"].set_index("date")
    assert np.allclose(tsla["close"], csv["close"])
    assert np.allclose(tsla["change_pct"], (csv["close"] / csv["prev_close"] - 1) * 100)


@pytest.mark.services
def test_long_ranges_are_read_weekly(loaded) -> None:
    start, end = date(2018, 1, 1), date(2021, 1, 31)  # wider than the data: weekly points
    frame = queries.overview(loaded, ["AAPL", "AMZN"], start, end)
    assert frame.attrs["resolution"] == "week"
    bars = data.daily_bars()
    aapl = bars[bars["symbol"] == "AAPL"].set_index("date")
    weeks = aapl.groupby(aapl.index.to_period("W"))
    got = frame[frame["symbol"] == "AAPL"].set_index("period")
    assert len(got) == weeks.ngroups
    assert np.allclose(got["close"], weeks["close"].last())
    assert np.allclose(got["volume"], weeks["volume"].sum())
    assert (
        np.allclose(frame.groupby("period")["volume_share_pct"].sum().dropna(), 100.0)
        or (
            frame.groupby(frame["period"].dt.to_period("W"))["volume_share_pct"].sum().round(6)
            == 100.0
        ).all()
    )


@pytest.mark.services
def test_symbol_history_joins_the_features(loaded) -> None:
    history, problem = queries.symbol_history(loaded, "NFLX", date(2019, 1, 1), date(2020, 12, 31))
    assert problem is None
    features = data.daily_features(data.daily_bars())
    expected = features[features["symbol"] == "NFLX"].reset_index(drop=True)
    assert len(history) == len(expected)
    for name in queries.FEATURE_COLUMNS:
        assert np.allclose(history[name], expected[name], equal_nan=True), name
    assert history[queries.SMA_COLUMNS[-1]].isna().sum() == 29  # null until 30 rows


@pytest.mark.services
def test_recent_windows_rank_the_latest_first(loaded) -> None:
    frame = queries.recent_windows(loaded)
    latest = frame[frame["recency"] == 1]
    assert sorted(latest["window_size"]) == ["15m", "1h"]
    for size, rows in frame.groupby("window_size"):
        assert (
            rows["window_start"].max()
            == latest[latest["window_size"] == size].iloc[0]["window_start"]
        )
        assert len(rows) == queries.RECENT_WINDOWS


@pytest.mark.services
def test_row_counts_and_loads(loaded) -> None:
    counts = queries.row_counts(loaded).set_index("table")["rows"]
    bars = data.daily_bars()
    assert counts["daily_metrics"] == len(bars) == counts["daily_features"]
    assert counts["intraday_features"] == 0  # created by the migrations, nothing loaded
    loads = queries.recent_loads(loaded)
    assert set(loads["table_name"]) == {
        "daily_metrics",
        "daily_features",
        "realtime_window_metrics",
    }
    assert set(loads["status"]) == {"succeeded"}
