"""The statements the models run are portable: on Snowflake (fakesnow) the features read
back as on PostgreSQL, the API's lookups answer, and model_runs rows insert."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
import pytest

from models.card import _sql_literal, model_run_rows, model_runs_insert_sql
from models.data import DAILY_COLUMNS, QuerySource, read_features
from models.direction import DirectionResult
from stocklake.settings import load_settings


@pytest.fixture
def snowflake():
    """Snowflake settings on fakesnow (in-process DuckDB, a fresh database per test)."""
    import fakesnow

    settings = load_settings(
        WAREHOUSE="snowflake",
        SNOWFLAKE_ACCOUNT="fakesnow",
        SNOWFLAKE_USER="models",
        SNOWFLAKE_PASSWORD="not-used-by-fakesnow",
        SNOWFLAKE_DATABASE="stocklake",
        SNOWFLAKE_SCHEMA=f"models_{uuid.uuid4().hex[:12]}",
    )
    with fakesnow.patch():
        yield settings


def test_the_statements_on_snowflake(
    snowflake, daily: pd.DataFrame, direction: DirectionResult
) -> None:
    from loaders import DAILY_FEATURES, connect_warehouse, run_query

    rows = daily[daily["symbol"] == "AAPL"].head(70)
    with connect_warehouse(snowflake) as warehouse:
        warehouse.migrate()
        values = ",\n".join(
            "(" + ", ".join(_sql_literal(v) for v in (*row, "2020-12-31 00:00:00+00:00", "t")) + ")"
            for row in rows.itertuples(index=False, name=None)
        )
        names = ", ".join([*DAILY_COLUMNS, "loaded_at", "run_id"])
        warehouse.query(f"INSERT INTO {DAILY_FEATURES.name} ({names}) VALUES {values}")

    def query(statement: str):
        return run_query(snowflake, statement)

    found = read_features(query, "daily")
    assert list(found.columns) == DAILY_COLUMNS and len(found) == 70
    pd.testing.assert_series_equal(
        found["return_pct"], rows["return_pct"].reset_index(drop=True), check_names=False
    )
    source = QuerySource(query)
    day = rows["trade_date"].iloc[-1]
    history = source.history("AAPL", day, 5)
    assert history["trade_date"].tolist() == rows["trade_date"].tail(5).tolist()
    assert source.has_symbol("AAPL") and not source.has_symbol("NOPE")
    assert source.history("AAPL", date(2018, 1, 1), 5).empty

    card = {**direction.card, "version": 1}
    run_query(snowflake, model_runs_insert_sql(model_run_rows(card, 1)), write=True)
    _, counted = run_query(snowflake, "SELECT COUNT(*), MIN(period_start) FROM model_runs")
    assert counted[0][0] == len(model_run_rows(card, 1))
