"""The figure builders on small frames: traces, values and markers."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from dashboard import charts

SMAS = ("sma_7", "sma_14", "sma_30")


def overview_frame() -> pd.DataFrame:
    periods = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"])
    return pd.DataFrame(
        {
            "symbol": ["AAA"] * 3 + ["BBB"] * 3,
            "period": list(periods) * 2,
            "close": [10.0, 11.0, 12.0, 50.0, 40.0, 60.0],
            "change_pct": [np.nan, 10.0, 100 / 11, np.nan, -20.0, 50.0],
            "volume": [100, 300, 100, 300, 100, 100],
            "volume_share_pct": [25.0, 75.0, 50.0, 75.0, 25.0, 50.0],
        }
    )


def history_frame() -> pd.DataFrame:
    days = pd.date_range("2020-01-01", periods=5, freq="D")
    return pd.DataFrame(
        {
            "trade_date": days,
            "open": [1.0, 2, 3, 4, 5],
            "high": [2.0, 3, 4, 5, 6],
            "low": [0.5, 1, 2, 3, 4],
            "close": [1.5, 2.5, 3.5, 4.5, 5.5],
            "volume": [10, 20, 30, 40, 50],
            "sma_7": [np.nan] * 5,
            "sma_14": [np.nan] * 5,
            "sma_30": [np.nan, 1, 2, 3, 4],
            "drawdown_pct": [0.0, -1, -2, 0, 0],
            "volatility_20d": [np.nan, 0.1, 0.2, 0.3, 0.2],
            "return_zscore_60d": [np.nan, 2.5, -0.5, -2.01, 2.0],
        }
    )


def test_lines_by_symbol_draws_one_line_per_symbol() -> None:
    figure = charts.lines_by_symbol(overview_frame(), "close", "Close", "price")
    assert [trace.name for trace in figure.data] == ["AAA", "BBB"]
    assert list(figure.data[1].y) == [50.0, 40.0, 60.0]


def test_rebase_starts_every_symbol_at_100_on_the_day() -> None:
    rebased = charts.rebase(overview_frame(), date(2020, 1, 3))
    assert rebased["period"].min() == pd.Timestamp("2020-01-03")
    by_symbol = rebased.groupby("symbol")["rebased"].apply(list).to_dict()
    assert by_symbol["AAA"] == pytest.approx([100.0, 100 * 12 / 11])
    assert by_symbol["BBB"] == pytest.approx([100.0, 150.0])


def test_rebased_chart_marks_the_base_line() -> None:
    figure = charts.rebased_chart(overview_frame(), date(2020, 1, 2))
    assert list(figure.data[0].y) == pytest.approx([100.0, 110.0, 120.0])
    assert any(shape.y0 == 100 for shape in figure.layout.shapes)


def test_volume_share_is_stacked_to_100() -> None:
    figure = charts.volume_share_chart(overview_frame())
    assert {trace.stackgroup for trace in figure.data} == {"share"}
    totals = np.sum([list(trace.y) for trace in figure.data], axis=0)
    assert list(totals) == [100.0, 100.0, 100.0]


def test_candlestick_has_bars_smas_with_values_and_volume() -> None:
    figure = charts.candlestick_chart(history_frame(), "AAA", SMAS)
    kinds = [trace.type for trace in figure.data]
    assert kinds == ["candlestick", "scatter", "bar"]  # the all-null SMAs are left out
    assert figure.data[1].name == "SMA 30"
    assert list(figure.data[2].y) == [10, 20, 30, 40, 50]


def test_zscore_marks_only_the_days_beyond_two() -> None:
    history = history_frame()
    figure = charts.zscore_chart(history, "return_zscore_60d")
    marked = figure.data[1]
    assert list(marked.y) == [2.5, -2.01]  # 2.0 exactly is not beyond
    assert sorted(shape.y0 for shape in figure.layout.shapes) == [-2.0, 2.0]
    assert len(charts.outliers(history, "return_zscore_60d")) == 2


def test_drawdown_and_volatility_plot_their_columns() -> None:
    history = history_frame()
    assert list(charts.drawdown_chart(history, "drawdown_pct").data[0].y) == [0, -1, -2, 0, 0]
    volatility = charts.volatility_chart(history, "volatility_20d")
    assert volatility.layout.yaxis.tickformat == ".0%"


def windows_frame() -> pd.DataFrame:
    starts = pd.to_datetime(
        ["2019-05-23 19:45", "2019-05-24 13:30", "2019-05-24 13:45", "2019-05-24 13:00"], utc=True
    )
    return pd.DataFrame(
        {
            "symbol": ["META"] * 4,
            "window_size": ["15m", "15m", "15m", "1h"],
            "window_start": starts,
            "avg_price": [180.0, 181.0, 182.0, 181.5],
            "volatility": [0.1, np.nan, 0.2, 0.3],
            "total_volume": [10, 20, 30, 60],
        }
    )


def test_latest_window_chart_has_one_bar_group_per_size() -> None:
    figure = charts.latest_window_chart(windows_frame(), "volatility", "Volatility", "price")
    assert [trace.name for trace in figure.data] == ["15m", "1h"]
    assert list(figure.data[0].text) == ["", "n/a", ""]


def test_recent_windows_chart_keeps_the_latest_session() -> None:
    figure = charts.recent_windows_chart(windows_frame(), "avg_price", "Average", "price")
    assert [trace.name for trace in figure.data] == ["META"]  # its 15m windows
    assert list(figure.data[0].y) == [181.0, 182.0]  # 2019-05-23 is an earlier session
    hourly = charts.recent_windows_chart(windows_frame(), "avg_price", "A", "price", size="1h")
    assert list(hourly.data[0].y) == [181.5]


def test_row_count_chart_leaves_out_missing_tables() -> None:
    counts = pd.DataFrame({"table": ["a", "b", "c"], "rows": [5, None, 0]})
    figure = charts.row_count_chart(counts)
    assert list(figure.data[0].x) == ["a", "c"]
