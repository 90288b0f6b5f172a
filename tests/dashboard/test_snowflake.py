"""The dashboard's statements on Snowflake's dialect: every page against fakesnow.

fakesnow (in-process, DuckDB underneath) parses the statements as Snowflake SQL. The
tables come from the loader's own migrations; their rows are a slice of the bundled real
bars, inserted with literal SQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime

import pandas as pd
import pytest

from dashboard import queries
from loaders import connect_warehouse, run_query
from stocklake.settings import Settings, get_settings
from tests.dashboard import data
from tests.dashboard.test_pages import PAGES, run_page

SNOWFLAKE_ENV = {
    "WAREHOUSE": "snowflake",
    "SNOWFLAKE_ACCOUNT": "fakesnow",
    "SNOWFLAKE_USER": "dashboard",
    "SNOWFLAKE_PASSWORD": "not-used-by-fakesnow",
    "SNOWFLAKE_DATABASE": "stocklake",
    "SNOWFLAKE_SCHEMA": "market",
}
SYMBOLS = ("AAPL", "TSLA")
FIRST, LAST = "2020-01-01", "2020-12-31"


def literal(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "NULL"
    if isinstance(value, pd.Timestamp | datetime):
        return f"'{pd.Timestamp(value).isoformat()}'::TIMESTAMP_TZ"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def insert(settings: Settings, table: str, frame: pd.DataFrame) -> None:
    rows = ", ".join(
        "(" + ", ".join(literal(value) for value in row) + ")"
        for row in frame.itertuples(index=False)
    )
    names = ", ".join(frame.columns)
    run_query(settings, f"INSERT INTO {table} ({names}) VALUES {rows}", write=True)


def fill(settings: Settings) -> None:
    bars = data.daily_bars()
    bars = bars[bars["symbol"].isin(SYMBOLS)]
    with connect_warehouse(settings) as warehouse:
        warehouse.migrate()
    stamp = {"loaded_at": pd.Timestamp.now(tz="UTC"), "run_id": "fakesnow"}
    metrics = data.daily_metrics(bars).to_pandas()
    metrics = metrics[
        metrics["trade_date"].between(date.fromisoformat(FIRST), date.fromisoformat(LAST))
    ]
    insert(settings, queries.DAILY_METRICS_TABLE, metrics.assign(**stamp))
    features = data.daily_features(bars)
    features = features[features["trade_date"].isin(set(metrics["trade_date"]))]
    insert(settings, queries.DAILY_FEATURES_TABLE, features.assign(**stamp))
    windows = data.window_metrics().to_pandas()
    insert(settings, queries.REALTIME_TABLE, windows.assign(**stamp))


@pytest.fixture
def snowflake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    import fakesnow

    for name, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    queries.clear_cache()
    with fakesnow.patch():
        settings = get_settings()
        fill(settings)
        yield settings
    get_settings.cache_clear()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_on_snowflake(snowflake: Settings, page: str) -> None:
    app = run_page(page)
    assert not app.exception, app.exception
    assert len(app.get("plotly_chart")) == PAGES[page]


def test_weekly_overview_on_snowflake(snowflake: Settings) -> None:
    frame = queries.overview(snowflake, list(SYMBOLS), date(2017, 1, 1), date(2021, 1, 1))
    assert frame.attrs["resolution"] == "week"
    assert set(frame["symbol"]) == set(SYMBOLS)
    shares = frame.groupby("period")["volume_share_pct"].sum()
    assert ((shares - 100).abs() < 1e-6).all()
