"""Market overview: closes, daily % change, prices rebased to 100, share of the volume."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries import WarehouseProblem


def main() -> None:
    st.title("Market overview")
    current = ui.settings()
    try:
        bounds = queries.daily_bounds(current)
        symbols = queries.daily_symbols(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    dates, picker, base = st.columns([2, 4, 2])
    with dates:
        start, end = ui.date_range(bounds, key="overview_dates")
    with picker:
        chosen = st.multiselect("Symbols", symbols, default=ui.default_symbols(symbols))
    with base:
        rebase_on = st.date_input("Rebase to 100 on", value=start, min_value=start, max_value=end)
    if not chosen:
        st.info("Pick at least one symbol.")
        return
    try:
        frame = queries.overview(current, chosen, start, end)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if frame.empty:
        st.info(f"No bars for {', '.join(chosen)} between {start} and {end}.")
        return
    show(frame, rebase_on)


def show(frame: pd.DataFrame, rebase_on: date) -> None:
    weekly = frame.attrs.get("resolution") == "week"
    if weekly:
        st.caption("A long range: one point per week (its last close, the week's volume).")
    change = "Weekly % change" if weekly else "Daily % change (close to previous close)"
    left, right = st.columns(2)
    with left:
        ui.chart(charts.lines_by_symbol(frame, "close", "Close", "price"), key="closes")
        ui.chart(charts.rebased_chart(frame, rebase_on), key="rebased")
    with right:
        ui.chart(charts.lines_by_symbol(frame, "change_pct", change, "%"), key="change")
        ui.chart(charts.volume_share_chart(frame), key="volume_share")


main()
