"""The next-day direction model: will a symbol's next trading day close up?

Input: the warehouse's `daily_features` rows (DAILY_FEATURES_COLUMNS), any symbols.
Per symbol, in date order, at each date t (the prediction date):

    close_to_sma_N_pct  (close_t / sma_N_t - 1) x 100, N = 7, 14, 30
    volatility_20d, return_zscore_60d, drawdown_pct   as of t
    return_pct          the return of t; return_pct_lag1..4 those of the 4 rows before

Every feature uses rows at or before t only (lags look back, never ahead; the test
suite proves it by truncating and by shifting). Label: 1 when the return of the
symbol's next row (the next trading day present) is positive, else 0; the last row of
a symbol has none and is not used.

Model: Pipeline(StandardScaler, LogisticRegression(lbfgs, random_state=seed)); C is
chosen from a small grid by log loss on the validation part, the model is fitted on the
train part only. Scored on the test part, next to two baselines fitted on the train
part: `always_up` (class 1, probability the train part's share of up days) and
`yesterday_sign` (the sign of the prediction date's own return, the probability of an
up day after an up / a not-up day in the train part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.card import fingerprint, git_commit, library_versions
from models.split import TimeSplit, time_split
from stocklake.schemas import DAILY_FEATURES_KEY, SMA_WINDOWS

NAME = "direction"
DEFAULT_SEED = 17
C_GRID = (0.01, 0.1, 1.0)
RETURN_LAGS = 4
# Rows of one symbol needed to compute the features of its latest date.
HISTORY_ROWS = RETURN_LAGS + 1

DIRECTION_FEATURES: tuple[str, ...] = (
    *(f"close_to_sma_{n}_pct" for n in SMA_WINDOWS),
    "volatility_20d",
    "return_zscore_60d",
    "drawdown_pct",
    "return_pct",
    *(f"return_pct_lag{k}" for k in range(1, RETURN_LAGS + 1)),
)
KEY = list(DAILY_FEATURES_KEY)
LABEL = "label"


class DirectionError(ValueError):
    """The data cannot train a direction model (too few rows, one class only...)."""


def _ordered(daily: pd.DataFrame) -> pd.DataFrame:
    frame = daily.copy()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True)


def direction_features(daily: pd.DataFrame) -> pd.DataFrame:
    """Key and features of every row (NaN where the history is too short)."""
    frame = _ordered(daily)
    out = frame[KEY].copy()
    close = frame["close"].astype(float)
    for n in SMA_WINDOWS:
        out[f"close_to_sma_{n}_pct"] = (close / frame[f"sma_{n}"].astype(float) - 1) * 100
    for name in ("volatility_20d", "return_zscore_60d", "drawdown_pct", "return_pct"):
        out[name] = frame[name].astype(float)
    returns = frame.groupby("symbol", sort=False)["return_pct"]
    for k in range(1, RETURN_LAGS + 1):
        out[f"return_pct_lag{k}"] = returns.shift(k).astype(float)  # k rows back, never ahead
    return out


def direction_labels(daily: pd.DataFrame) -> pd.Series:
    """1.0 when the next row's return is positive, 0.0 when not, NaN without a next row."""
    frame = _ordered(daily)
    following = frame.groupby("symbol", sort=False)["return_pct"].shift(-1).astype(float)
    return pd.Series(np.where(following.isna(), np.nan, (following > 0).astype(float)))


def direction_frame(daily: pd.DataFrame) -> pd.DataFrame:
    """The rows a model can learn from: finite features and a label, in key order."""
    frame = direction_features(daily)
    frame[LABEL] = direction_labels(daily).to_numpy()
    usable = np.isfinite(frame[[*DIRECTION_FEATURES, LABEL]].to_numpy(dtype=float)).all(axis=1)
    frame = frame[usable].reset_index(drop=True)
    frame[LABEL] = frame[LABEL].astype(int)
    return frame


def features_at(history: pd.DataFrame) -> dict[str, float]:
    """The features of the latest row of one symbol's rows (its last HISTORY_ROWS or more)."""
    features = direction_features(history)
    return {name: float(features[name].iloc[-1]) for name in DIRECTION_FEATURES}


def _scores(labels: np.ndarray, probability: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    both = len(np.unique(labels)) == 2
    return {
        "rows": len(labels),
        "accuracy": float(accuracy_score(labels, classes)),
        "roc_auc": float(roc_auc_score(labels, probability)) if both else None,
        "log_loss": float(log_loss(labels, np.clip(probability, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "up_share": float(np.mean(labels)),
    }


def _pipeline(c: float, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(C=c, max_iter=1000, random_state=seed)),
        ]
    )


@dataclass
class DirectionResult:
    pipeline: Pipeline
    card: dict[str, Any]
    frame: pd.DataFrame = field(repr=False)  # the labelled rows (every part)
    split: TimeSplit = field(repr=False)

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def model(self) -> Pipeline:
        """What the registry stores."""
        return self.pipeline


def train_direction(daily: pd.DataFrame, *, seed: int = DEFAULT_SEED) -> DirectionResult:
    """Fit on the earliest dates, choose C on the next, score on the last (see module)."""
    return fit_direction(direction_frame(daily), seed=seed)


# Over 60 lines: the fit, the two baselines and their scores on each part read best in
# one place; each step is a few lines (the split, the C grid, the baselines, the card).
def fit_direction(frame: pd.DataFrame, *, seed: int = DEFAULT_SEED) -> DirectionResult:
    """`train_direction` on prepared rows (`direction_frame`: key, features, label)."""
    if frame.empty:
        raise DirectionError(
            "no daily_features row has every feature and a next day: load more history "
            f"(a symbol needs {max(SMA_WINDOWS)} and 60 earlier returns)"
        )
    try:
        split = time_split(frame["trade_date"])
    except ValueError as error:
        raise DirectionError(str(error)) from None
    x = frame[list(DIRECTION_FEATURES)].to_numpy(dtype=float)
    y = frame[LABEL].to_numpy(dtype=int)
    parts = {name: getattr(split, name) for name in ("train", "validate", "test")}
    if len(np.unique(y[parts["train"]])) < 2:
        raise DirectionError("the train part has one class only")

    chosen, pipeline, validate_loss = None, None, np.inf
    for c in C_GRID:
        candidate = _pipeline(c, seed).fit(x[parts["train"]], y[parts["train"]])
        probability = candidate.predict_proba(x[parts["validate"]])[:, 1]
        loss = log_loss(y[parts["validate"]], probability, labels=[0, 1])
        if loss < validate_loss:
            chosen, pipeline, validate_loss = c, candidate, loss

    train_up = float(np.mean(y[parts["train"]]))
    today_up = frame["return_pct"].to_numpy() > 0
    after_up, after_down = (
        float(np.mean(y[parts["train"] & side])) if np.any(parts["train"] & side) else train_up
        for side in (today_up, ~today_up)
    )

    metrics: dict[str, dict[str, Any]] = {}
    for part in ("validate", "test"):
        mask = parts[part]
        labels = y[mask]
        probability = pipeline.predict_proba(x[mask])[:, 1]
        metrics[part] = {"model": _scores(labels, probability, (probability >= 0.5).astype(int))}
        if part == "test":
            constant = np.full(len(labels), train_up)
            metrics[part]["always_up"] = _scores(labels, constant, np.ones(len(labels), int))
            sign = np.where(today_up[mask], after_up, after_down)
            metrics[part]["yesterday_sign"] = _scores(labels, sign, today_up[mask].astype(int))

    ranges = split.ranges(frame["trade_date"])
    train_rows = frame[parts["train"]]
    classify = pipeline.named_steps["classify"]
    card = {
        "name": NAME,
        "kind": "classifier",
        "description": "P(next trading day's return > 0) from the daily features",
        "features": list(DIRECTION_FEATURES),
        "label": "1 if the symbol's next trading day's return_pct > 0, else 0",
        "history_rows": HISTORY_ROWS,
        "training_range": ranges["train"],
        "ranges": ranges,
        "symbols": sorted(frame["symbol"].unique().tolist()),
        "rows": {part: int(mask.sum()) for part, mask in parts.items()},
        "data_fingerprint": fingerprint(train_rows, KEY, [*KEY, *DIRECTION_FEATURES, LABEL]),
        "fingerprint_of": "train rows: symbol, trade_date, features, label in key order",
        "params": {"seed": seed, "C": chosen, "C_grid": list(C_GRID), "scaler": "standard"},
        "coefficients": {
            "intercept": float(classify.intercept_[0]),
            **{
                name: float(value)
                for name, value in zip(DIRECTION_FEATURES, classify.coef_[0], strict=True)
            },
        },
        "metrics": metrics,
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return DirectionResult(pipeline=pipeline, card=card, frame=frame, split=split)
