"""Real time: the latest 15-minute and 1-hour window per symbol, refreshed on a timer."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries import TableMissing, WarehouseProblem

REFRESH_S = 10
# Symbols drawn by default (every symbol is in the table).
SHOWN = 8
EMPTY = "No real-time windows loaded yet."
# (column, title, y-axis title) of each chart.
MEASURES = (
    ("avg_price", "Average price", "price"),
    ("volatility", "Volatility (std of price)", "price"),
    ("total_volume", "Volume", "shares"),
)


@st.fragment(run_every=REFRESH_S)
def windows() -> None:
    try:
        frame = queries.recent_windows(ui.settings())
    except TableMissing:
        frame = pd.DataFrame()
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if frame.empty:
        st.info(f"{EMPTY} To fill {queries.REALTIME_TABLE}, run:")
        st.code(queries.FILL_COMMAND[queries.REALTIME_TABLE], language="bash")
        return
    latest = frame[frame["recency"] == 1].drop(columns="recency")
    st.caption(
        f"Latest window ends {latest['window_end'].max():%Y-%m-%d %H:%M} UTC;"
        f" read at {datetime.now(UTC):%H:%M:%S} UTC."
    )
    symbols = sorted(latest["symbol"].unique())
    chosen = st.multiselect(
        "Symbols", symbols, default=ui.default_symbols(symbols, SHOWN), key="realtime_symbols"
    )
    shown = frame[frame["symbol"].isin(chosen)]
    draw(shown[shown["recency"] == 1], shown)
    st.subheader("Latest window of every symbol")
    st.dataframe(latest, hide_index=True)


def draw(latest: pd.DataFrame, recent: pd.DataFrame) -> None:
    st.subheader("Latest window")
    for column, (name, title, y_title) in zip(st.columns(3), MEASURES, strict=True):
        with column:
            figure = charts.latest_window_chart(latest, name, title, y_title)
            ui.chart(figure, key=f"latest_{name}")
    if latest["volatility"].isna().any():
        st.caption("A window with a single tick has no volatility (n/a): its bar is missing.")
    st.subheader("Latest session, 15-minute windows")
    for column, (name, title, y_title) in zip(st.columns(3), MEASURES, strict=True):
        with column:
            figure = charts.recent_windows_chart(recent, name, title, y_title)
            ui.chart(figure, key=f"recent_{name}")


def main() -> None:
    st.title("Real time")
    st.caption(f"The latest 15-minute and 1-hour windows per symbol, every {REFRESH_S} s.")
    windows()


main()
