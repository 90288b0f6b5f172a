"""One symbol: candlesticks with SMA 7/14/30 and volume, drawdown, volatility, z-score."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries import WarehouseProblem


def main() -> None:
    st.title("Symbol")
    current = ui.settings()
    try:
        bounds = queries.daily_bounds(current)
        symbols = queries.daily_symbols(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    pick, dates = st.columns([1, 2])
    with pick:
        preferred = ui.default_symbols(symbols, 1)
        symbol = st.selectbox("Symbol", symbols, index=symbols.index(preferred[0]))
    with dates:
        start, end = ui.date_range(bounds, key="symbol_dates")
    try:
        history, problem = queries.symbol_history(current, symbol, start, end)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if history.empty:
        st.info(f"No bars for {symbol} between {start} and {end}.")
        return
    headline(history)
    ui.chart(charts.candlestick_chart(history, symbol, queries.SMA_COLUMNS), key="candles")
    if problem is not None:
        ui.show_problem(problem)
        return
    features(history)


def headline(history: pd.DataFrame) -> None:
    last = history.iloc[-1]
    first = history.iloc[0]
    change = (last["close"] / first["close"] - 1) * 100
    close, period, days = st.columns(3)
    close.metric(f"Close on {last['trade_date']:%Y-%m-%d}", f"{last['close']:,.2f}")
    period.metric("Change over the range", f"{change:+.1f}%")
    days.metric("Trading days", f"{len(history)}")


def features(history: pd.DataFrame) -> None:
    left, right = st.columns(2)
    with left:
        ui.chart(charts.drawdown_chart(history, queries.DRAWDOWN), key="drawdown")
    with right:
        ui.chart(charts.volatility_chart(history, queries.VOLATILITY), key="volatility")
    ui.chart(charts.zscore_chart(history, queries.ZSCORE), key="zscore")
    beyond = charts.outliers(history, queries.ZSCORE)
    st.caption(f"{len(beyond)} day(s) with a return z-score beyond ±{charts.ZSCORE_LIMIT:g}.")


main()
