"""The stress index: the F1 threshold search on hand-made series, the labels, the formula,
and training on the bundled real minute and daily files."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.stress import DAILY, INTRADAY, daily_frame, intraday_frame, train_stress
from models.threshold import best_f1_threshold, precision_recall_f1
from stocklake.schemas import INTRADAY_FEATURES_COLUMNS


def test_best_f1_threshold_on_a_known_series() -> None:
    # Alarms at >= 0.4 catch all four drops with one false alarm: F1 = 8/9, the best
    # (>= 0.6: 6/7; >= 0.3: 8/10; >= 0.5: 6/8). Order of the input does not matter.
    scores = np.array([0.5, 0.1, 0.8, 0.3, 0.6, 0.2, 0.7, 0.4])
    labels = np.array([0, 0, 1, 0, 1, 0, 1, 1])
    best = best_f1_threshold(scores, labels)
    assert best.threshold == 0.4
    assert best.f1 == pytest.approx(8 / 9)
    assert (best.precision, best.recall) == (0.8, 1.0)
    assert precision_recall_f1(scores >= 0.4, labels.astype(bool)) == pytest.approx(
        (0.8, 1.0, 8 / 9)
    )


def test_best_f1_threshold_ties_and_equal_scores() -> None:
    # Equal scores alarm together: at >= 0.5 both 0.5s alarm (a drop and a calm row), so
    # F1 = 4/5 there; splitting the tie would report a perfect, non-existent threshold.
    best = best_f1_threshold(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    assert (best.threshold, best.f1, best.precision) == (0.5, pytest.approx(0.8), 2 / 3)
    # Two thresholds with the same F1: the higher one (fewer alarms).
    tie = best_f1_threshold(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 0, 1]))
    assert tie.f1 == pytest.approx(2 / 3) and tie.threshold == 0.9
    with pytest.raises(ValueError, match="no positive"):
        best_f1_threshold(np.array([0.1, 0.2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="finite"):
        best_f1_threshold(np.array([np.nan, 0.2]), np.array([1, 0]))


def _minutes(closes: list[float], day: str = "2019-05-20") -> pd.DataFrame:
    ts = pd.date_range(f"{day} 13:30", periods=len(closes), freq="1min", tz="UTC")
    frame = pd.DataFrame({name: 0.0 for name, _ in INTRADAY_FEATURES_COLUMNS}, index=ts)
    frame["symbol"], frame["trade_date"], frame["bar_ts"] = "X", date.fromisoformat(day), ts
    frame["close"] = closes
    return frame.reset_index(drop=True)


def test_intraday_label_is_a_drop_within_the_horizon_in_the_session() -> None:
    closes = [100, 100, 99.4, 100, 100, 100, 100, 100]  # -0.6% at minute 2
    frame = intraday_frame(_minutes(closes), drop_pct=0.5, horizon_minutes=2)
    # Rows 0..5 have a complete 2-minute horizon in the session; rows 6 and 7 do not.
    assert frame["label"].tolist() == [1, 1, 0, 0, 0, 0]
    two_sessions = pd.concat([_minutes([100, 100, 100]), _minutes([90, 90, 90], "2019-05-21")])
    # The next session's lower prices are not a drop within the first session.
    assert intraday_frame(two_sessions, drop_pct=0.5, horizon_minutes=1)["label"].sum() == 0


def test_daily_label_looks_at_the_next_n_rows() -> None:
    days = pd.bdate_range("2020-01-01", periods=8).date
    frame = pd.DataFrame(
        {
            "symbol": "X",
            "trade_date": days,
            "close": [100, 100, 100, 94, 100, 100, 100, 100],
            "sma_7": 100.0,
            "drawdown_pct": 0.0,
            "volatility_20d": 0.2,
        }
    )
    labelled = daily_frame(frame, drop_pct=5, horizon_days=2)
    assert labelled["label"].tolist() == [0, 1, 1, 0, 0, 0]  # the last 2 have no horizon


@pytest.mark.parametrize("kind", [INTRADAY, DAILY])
def test_stress_on_the_bundled_data(kind: str, intraday: pd.DataFrame, daily: pd.DataFrame) -> None:
    features = intraday if kind == INTRADAY else daily
    result = train_stress(features, kind)
    frame, split, index = result.frame, result.split, result.index
    # The formula of the module docstring.
    manual = (
        sum(
            sign
            * (frame[column] - frame[split.train][column].mean())
            / frame[split.train][column].std(ddof=0)
            for column, sign in index.components
        )
        / 3
    )
    np.testing.assert_allclose(index.score(frame), manual.to_numpy(), rtol=1e-12)
    # The threshold is the validation part's best F1, by brute force over every score.
    scores, labels = index.score(frame), frame["label"].to_numpy(bool)
    validate = split.validate
    f1 = [precision_recall_f1(scores[validate] >= t, labels[validate])[2] for t in scores[validate]]
    assert result.card["metrics"]["validate"]["stress_index"]["f1"] == pytest.approx(max(f1))
    assert index.threshold in set(scores[validate][np.isclose(f1, max(f1))])
    # Test metrics: the test part only, at that threshold.
    precision, recall, f1_test = precision_recall_f1(
        scores[split.test] >= index.threshold, labels[split.test]
    )
    reported = result.card["metrics"]["test"]["stress_index"]
    assert (reported["precision"], reported["recall"], reported["f1"]) == (
        precision,
        recall,
        f1_test,
    )
    assert reported["rows"] == int(split.test.sum())
    assert frame["trade_date"][split.train].max() < frame["trade_date"][split.test].min()
    # Deterministic.
    again = train_stress(features.copy(), kind)
    assert again.card["metrics"] == result.card["metrics"]
    assert again.card["data_fingerprint"] == result.card["data_fingerprint"]
