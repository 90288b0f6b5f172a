"""What every page shares: the settings, the sidebar, the date-range picker and messages."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboard import queries
from dashboard.queries import Bounds, WarehouseProblem
from stocklake.settings import Settings, get_settings


def settings() -> Settings:
    """The process's settings (WAREHOUSE_SCHEMA, or SNOWFLAKE_SCHEMA, picks the schema)."""
    return get_settings()


def sidebar(current: Settings) -> None:
    st.sidebar.caption(f"warehouse: `{queries.warehouse_label(current)}`")
    if st.sidebar.button("Refresh data", help="Forget cached query results and read again"):
        queries.clear_cache()


def show_problem(problem: WarehouseProblem) -> None:
    """The message for a page with nothing to show, and the command that fixes it."""
    st.info(problem.message[0].upper() + problem.message[1:] + ". To fill it, run:")
    st.code(problem.command, language="bash")


def date_range(bounds: Bounds, key: str, days: int = 365) -> tuple[date, date]:
    """A date-range picker within the data's bounds, defaulting to its last `days`."""
    picked = st.date_input(
        "Dates",
        value=bounds.default_range(days),
        min_value=bounds.first,
        max_value=bounds.last,
        key=key,
    )
    if isinstance(picked, date):
        return picked, picked
    if len(picked) == 2:
        return picked[0], picked[1]
    # Half-picked (first click of a range): that day only, until the second click.
    return (picked[0], picked[0]) if picked else bounds.default_range(days)


def default_symbols(symbols: list[str], count: int = 6) -> list[str]:
    """The first `count` symbols that are not indices (^GSPC's volume would dwarf them)."""
    stocks = [symbol for symbol in symbols if not symbol.startswith("^")]
    return (stocks or symbols)[:count]


def chart(figure: object, key: str) -> None:
    st.plotly_chart(figure, width="stretch", key=key, config={"displaylogo": False})
