"""Real time: the latest 15-minute and 1-hour window per symbol, refreshed on a timer."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries import TableMissing, WarehouseProblem

REFRESH_S = 10
EMPTY = "No real-time windows loaded yet."


@st.fragment(run_every=REFRESH_S)
def windows() -> None:
    try:
        frame = queries.latest_windows(ui.settings())
    except TableMissing as problem:
        st.info(f"{EMPTY} To fill {queries.REALTIME_TABLE}, run:")
        st.code(problem.command, language="bash")
        return
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if frame.empty:
        st.info(f"{EMPTY} To fill {queries.REALTIME_TABLE}, run:")
        st.code(queries.FILL_COMMAND[queries.REALTIME_TABLE], language="bash")
        return
    latest = frame["window_end"].max()
    st.caption(f"Latest window ends {latest}; read at {datetime.now(UTC):%H:%M:%S} UTC.")
    price, volatility, volume = st.columns(3)
    with price:
        figure = charts.window_chart(frame, "avg_price", "Average price", "price")
        ui.chart(figure, key="avg_price")
    with volatility:
        figure = charts.window_chart(frame, "volatility", "Volatility (std of price)", "price")
        ui.chart(figure, key="volatility")
    with volume:
        figure = charts.window_chart(frame, "total_volume", "Volume", "shares")
        ui.chart(figure, key="volume")
    st.dataframe(frame, hide_index=True)


def main() -> None:
    st.title("Real time")
    st.caption(f"The latest 15-minute and 1-hour windows per symbol, every {REFRESH_S} s.")
    windows()


main()
