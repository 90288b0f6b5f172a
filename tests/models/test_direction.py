"""The direction model on the bundled real daily files: held-out metrics, determinism,
the data fingerprint, and no information from after the prediction date."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from models.direction import (
    DIRECTION_FEATURES,
    LABEL,
    DirectionResult,
    direction_features,
    direction_frame,
    fit_direction,
    train_direction,
)

CUT = date(2020, 6, 15)


def test_the_parts_follow_each_other_in_time(direction: DirectionResult) -> None:
    dates, split = direction.frame["trade_date"], direction.split
    assert dates[split.train].max() < dates[split.validate].min()
    assert dates[split.validate].max() < dates[split.test].min()
    assert not np.any(split.train & split.validate) and not np.any(split.validate & split.test)
    # One embargoed date between the parts: no train label reads a validation price.
    all_dates = sorted(dates.unique())
    assert (
        all_dates.index(dates[split.validate].min()) - all_dates.index(dates[split.train].max())
        == 2
    )
    ranges = direction.card["ranges"]
    assert direction.card["training_range"] == ranges["train"]
    assert ranges["test"] == [str(dates[split.test].min()), str(dates[split.test].max())]


def test_metrics_are_those_of_the_test_period_only(direction: DirectionResult) -> None:
    test = direction.frame[direction.split.test]
    x = test[list(DIRECTION_FEATURES)].to_numpy()
    y = test[LABEL].to_numpy()
    probability = direction.pipeline.predict_proba(x)[:, 1]
    reported = direction.card["metrics"]["test"]["model"]
    assert reported["rows"] == len(test) == direction.card["rows"]["test"]
    assert reported["accuracy"] == accuracy_score(y, probability >= 0.5)
    assert reported["roc_auc"] == roc_auc_score(y, probability)
    assert reported["log_loss"] == pytest.approx(log_loss(y, probability), rel=1e-12)
    # The baselines too: always up scores the test period's share of up days.
    always_up = direction.card["metrics"]["test"]["always_up"]
    assert always_up["accuracy"] == pytest.approx(y.mean())
    assert always_up["roc_auc"] == 0.5
    yesterday = direction.card["metrics"]["test"]["yesterday_sign"]
    assert yesterday["accuracy"] == pytest.approx(np.mean((test["return_pct"] > 0) == y))


def test_changing_a_test_row_label_changes_only_test_metrics(daily: pd.DataFrame) -> None:
    frame = direction_frame(daily)
    base = fit_direction(frame)
    flipped = frame.copy()
    last = flipped.index[base.split.test][-1]
    flipped.loc[last, LABEL] = 1 - flipped.loc[last, LABEL]
    other = fit_direction(flipped)
    assert other.card["coefficients"] == base.card["coefficients"]
    assert other.card["metrics"]["validate"] == base.card["metrics"]["validate"]
    assert other.card["metrics"]["test"] != base.card["metrics"]["test"]


def test_retraining_with_the_same_seed_is_identical(daily: pd.DataFrame) -> None:
    first, second = train_direction(daily, seed=5), train_direction(daily.copy(), seed=5)
    classify = [run.pipeline.named_steps["classify"] for run in (first, second)]
    assert np.array_equal(classify[0].coef_, classify[1].coef_)
    assert np.array_equal(classify[0].intercept_, classify[1].intercept_)
    assert first.card["coefficients"] == second.card["coefficients"]
    assert first.card["metrics"] == second.card["metrics"]
    assert first.card["data_fingerprint"] == second.card["data_fingerprint"]


def test_the_fingerprint_changes_with_one_training_row(
    daily: pd.DataFrame, direction: DirectionResult
) -> None:
    train_first, _ = direction.card["training_range"]
    row = daily.index[
        (daily["symbol"] == "AAPL") & (daily["trade_date"] > date.fromisoformat(train_first))
    ][40]
    changed = daily.copy()
    changed.loc[row, "volatility_20d"] *= 1.000001
    assert train_direction(changed).card["data_fingerprint"] != direction.card["data_fingerprint"]
    # A row of the test period is not training data: the fingerprint stays.
    later = daily.index[(daily["symbol"] == "AAPL")][-3]
    outside = daily.copy()
    outside.loc[later, "volatility_20d"] *= 1.1
    assert train_direction(outside).card["data_fingerprint"] == direction.card["data_fingerprint"]


def test_features_of_a_date_use_nothing_after_it(daily: pd.DataFrame) -> None:
    """Truncated at CUT, or with every later row scrambled: the features up to CUT agree."""
    full = direction_features(daily).set_index(["symbol", "trade_date"])
    truncated = direction_features(daily[daily["trade_date"] <= CUT]).set_index(
        ["symbol", "trade_date"]
    )
    pd.testing.assert_frame_equal(full.loc[truncated.index], truncated)

    scrambled = daily.copy()
    later = scrambled["trade_date"] > CUT
    rng = np.random.default_rng(0)
    for column in DIRECTION_FEATURES[:6] + ("return_pct", "close"):
        if column in scrambled:
            scrambled.loc[later, column] = rng.normal(size=int(later.sum()))
    after = direction_features(scrambled).set_index(["symbol", "trade_date"])
    pd.testing.assert_frame_equal(after.loc[truncated.index], truncated)
    # The label is the one thing that looks ahead: the day before CUT's label still agrees,
    # CUT's own label (the next day's return) is the scrambled day's.
    labelled = direction_frame(daily).set_index(["symbol", "trade_date"])[LABEL]
    relabelled = direction_frame(scrambled).set_index(["symbol", "trade_date"])[LABEL]
    before = labelled.index.get_level_values("trade_date") < CUT
    common = labelled[before].index.intersection(relabelled.index)
    assert labelled[common].equals(relabelled[common])


def test_features_shifted_one_day_ahead_show_as_leakage(daily: pd.DataFrame) -> None:
    """Tomorrow's features against tomorrow's direction: the held-out accuracy jumps,
    which is what the real features must not do."""
    frame = direction_frame(daily)
    honest = fit_direction(frame).card["metrics"]["test"]["model"]["accuracy"]
    leaked = frame.copy()
    by_symbol = leaked.groupby("symbol", sort=False)
    for name in DIRECTION_FEATURES:
        leaked[name] = by_symbol[name].shift(-1)
    leaked = leaked.dropna(subset=list(DIRECTION_FEATURES)).reset_index(drop=True)
    cheating = fit_direction(leaked).card["metrics"]["test"]["model"]["accuracy"]
    assert honest < 0.6
    assert cheating > 0.9


def test_the_card_describes_the_run(direction: DirectionResult) -> None:
    card = direction.card
    assert card["features"] == list(DIRECTION_FEATURES)
    assert len(card["data_fingerprint"]) == 64
    assert set(card["libraries"]) >= {"python", "scikit-learn", "numpy", "pandas"}
    assert card["libraries"]["scikit-learn"] == "1.9.1"
    assert card["git_commit"] == "unknown" or len(card["git_commit"]) == 40
    assert set(card["metrics"]["test"]) == {"model", "always_up", "yesterday_sign"}
    assert card["params"]["C"] in card["params"]["C_grid"]
