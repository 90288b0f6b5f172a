"""Plotly figures for the dashboard: pure functions of DataFrames (no warehouse, no Streamlit).

Frames come from `dashboard.queries` (lower-case column names). Each builder returns a
`go.Figure` and never changes the frame it is given.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from stocklake.schemas import WINDOW_SIZES

ZSCORE_LIMIT = 2.0
WINDOW_COLORS = dict(zip(WINDOW_SIZES, ("#1f77b4", "#ff7f0e"), strict=True))
# Distinct from the candles' green and red.
SMA_COLORS = ("#ff7f0e", "#9467bd", "#17becf")
HEIGHT = 360


def _layout(figure: go.Figure, title: str, y_title: str, height: int = HEIGHT) -> go.Figure:
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="x unified",
    )
    figure.update_yaxes(title_text=y_title)
    return figure


def lines_by_symbol(frame: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    """One line per symbol of `value` over `period`."""
    figure = go.Figure()
    for symbol, rows in frame.groupby("symbol", sort=True):
        figure.add_trace(
            go.Scatter(x=rows["period"], y=rows[value], mode="lines", name=str(symbol))
        )
    return _layout(figure, title, y_title)


def rebase(frame: pd.DataFrame, on: date) -> pd.DataFrame:
    """Rows from `on`, with `rebased`: close / the symbol's first close from `on` x 100."""
    rows = frame[frame["period"] >= pd.Timestamp(on)].sort_values(["symbol", "period"])
    first = rows.groupby("symbol")["close"].transform("first")
    return rows.assign(rebased=100 * rows["close"] / first)


def rebased_chart(frame: pd.DataFrame, on: date) -> go.Figure:
    figure = lines_by_symbol(rebase(frame, on), "rebased", f"Rebased to 100 on {on}", "index")
    figure.add_hline(y=100, line_dash="dot", line_color="gray")
    return figure


def volume_share_chart(frame: pd.DataFrame) -> go.Figure:
    """Each symbol's share of the selected symbols' volume, stacked to 100%."""
    figure = go.Figure()
    for symbol, rows in frame.groupby("symbol", sort=True):
        figure.add_trace(
            go.Scatter(
                x=rows["period"],
                y=rows["volume_share_pct"],
                name=str(symbol),
                mode="lines",
                line={"width": 0.5},
                stackgroup="share",
            )
        )
    figure.update_yaxes(range=[0, 100])
    return _layout(figure, "Share of the volume (selected symbols)", "% of volume")


def candlestick_chart(
    history: pd.DataFrame, symbol: str, sma_columns: tuple[str, ...]
) -> go.Figure:
    """Candlesticks with the SMAs over them, and volume bars below."""
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03
    )
    figure.add_trace(
        go.Candlestick(
            x=history["trade_date"],
            open=history["open"],
            high=history["high"],
            low=history["low"],
            close=history["close"],
            name=symbol,
        ),
        row=1,
        col=1,
    )
    for index, name in enumerate(sma_columns):
        if name in history and history[name].notna().any():
            figure.add_trace(
                go.Scatter(
                    x=history["trade_date"],
                    y=history[name],
                    mode="lines",
                    name=name.upper().replace("_", " "),
                    line={"color": SMA_COLORS[index % len(SMA_COLORS)], "width": 1.5},
                ),
                row=1,
                col=1,
            )
    figure.add_trace(
        go.Bar(x=history["trade_date"], y=history["volume"], name="volume", marker_color="#888"),
        row=2,
        col=1,
    )
    # No empty weekends between the candles (holidays still show as gaps).
    figure.update_xaxes(rangeslider_visible=False, rangebreaks=[{"bounds": ["sat", "mon"]}])
    _layout(figure, f"{symbol}: daily bars, SMA and volume", "price", height=560)
    figure.update_yaxes(title_text="volume", row=2, col=1)
    return figure


def drawdown_chart(history: pd.DataFrame, column: str) -> go.Figure:
    figure = go.Figure(
        go.Scatter(
            x=history["trade_date"],
            y=history[column],
            mode="lines",
            fill="tozeroy",
            name="drawdown",
            line_color="#d62728",
        )
    )
    return _layout(figure, "Drawdown from the running high", "%")


def volatility_chart(history: pd.DataFrame, column: str) -> go.Figure:
    figure = go.Figure(
        go.Scatter(x=history["trade_date"], y=history[column], mode="lines", name=column)
    )
    figure.update_yaxes(tickformat=".0%")
    return _layout(figure, "Rolling volatility (20 days, annualised)", "volatility")


def outliers(history: pd.DataFrame, column: str, limit: float = ZSCORE_LIMIT) -> pd.DataFrame:
    """The days whose z-score is beyond +-limit."""
    return history[history[column].abs() > limit]


def zscore_chart(history: pd.DataFrame, column: str, limit: float = ZSCORE_LIMIT) -> go.Figure:
    """The return z-score, with the days beyond +-limit marked."""
    figure = go.Figure(
        go.Scatter(x=history["trade_date"], y=history[column], mode="lines", name="z-score")
    )
    beyond = outliers(history, column, limit)
    figure.add_trace(
        go.Scatter(
            x=beyond["trade_date"],
            y=beyond[column],
            mode="markers",
            name=f"beyond ±{limit:g}",
            marker={"color": "#d62728", "size": 8},
        )
    )
    for level in (limit, -limit):
        figure.add_hline(y=level, line_dash="dash", line_color="#d62728")
    return _layout(figure, "Return z-score (against the previous 60 days)", "z")


def latest_window_chart(windows: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    """Grouped bars: `value` of each symbol's latest window, one bar per window size
    (a window with one tick has no volatility: its bar is missing, its label says so)."""
    figure = go.Figure()
    for size, rows in windows.groupby("window_size", sort=True):
        figure.add_trace(
            go.Bar(
                x=rows["symbol"],
                y=rows[value],
                name=str(size),
                # Only a missing value is labelled: a bar that is not there says why.
                text=["n/a" if pd.isna(number) else "" for number in rows[value]],
                marker_color=WINDOW_COLORS.get(str(size)),
            )
        )
    figure.update_layout(barmode="group")
    return _layout(figure, title, y_title, height=300)


def latest_session(windows: pd.DataFrame) -> pd.DataFrame:
    """The windows that start on the day (UTC) of each symbol's latest window."""
    day = windows["window_start"].dt.date
    last = day.groupby(windows["symbol"]).transform("max")
    return windows[day == last]


def recent_windows_chart(
    windows: pd.DataFrame, value: str, title: str, y_title: str, size: str = "15m"
) -> go.Figure:
    """`value` over each symbol's latest session, one line per symbol (`size` windows)."""
    figure = go.Figure()
    session = latest_session(windows)
    ordered = session[session["window_size"] == size].sort_values("window_start")
    for symbol, rows in ordered.groupby("symbol", sort=True):
        figure.add_trace(
            go.Scatter(x=rows["window_start"], y=rows[value], mode="lines", name=str(symbol))
        )
    _layout(figure, title, y_title, height=340)
    figure.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0})
    return figure


def row_count_chart(counts: pd.DataFrame) -> go.Figure:
    """Rows per warehouse table (tables not created yet are left out)."""
    present = counts.dropna(subset=["rows"])
    figure = go.Figure(
        go.Bar(x=present["table"], y=present["rows"], text=present["rows"], marker_color="#1f77b4")
    )
    return _layout(figure, "Rows per table", "rows", height=300)
