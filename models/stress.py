"""The stress index: a composite of drawdown, volatility and negative momentum, with an
alarm threshold tuned for F1 against labelled drops.

Formula. With z(x) = (x - mean_train(x)) / std_train(x) (mean and population std of
the train part, fixed at training time) the index at a row is

    stress = ( -z(drawdown) + z(volatility) - z(momentum) ) / 3

so a deeper drawdown, a higher volatility and a more negative momentum each raise it.

    intraday (`intraday_features`, 1-minute bars): drawdown = drawdown_from_high_pct,
        volatility = realized_vol_15m, momentum = return_15m
    daily (`daily_features`): drawdown = drawdown_pct, volatility = volatility_20d,
        momentum = (close / sma_7 - 1) x 100

Label. A drop of at least X% within the next N: 1 when the lowest close of the rows
after t up to t + N is at most close_t x (1 - X/100).
    intraday: N minutes of event time within the same session (default X = 0.5%,
        N = 15); a row whose session ends before t + N has no label and is not used.
    daily: the next N rows of the symbol (trading days present; default X = 5%, N = 5);
        a row without N later rows has no label.

Threshold. An alarm is stress >= threshold; the threshold maximises F1 on the validate
part (`models.threshold`); precision, recall and F1 are reported on the test part, next
to the `always_alarm` baseline (every row an alarm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from models.card import fingerprint, git_commit, library_versions
from models.split import TimeSplit, time_split
from models.threshold import best_f1_threshold, precision_recall_f1

INTRADAY = "stress_intraday"
DAILY = "stress_daily"
DEFAULT_INTRADAY_DROP_PCT = 0.5
DEFAULT_INTRADAY_HORIZON_MINUTES = 15
DEFAULT_DAILY_DROP_PCT = 5.0
DEFAULT_DAILY_HORIZON_DAYS = 5
LABEL = "label"

# (column, sign): the index is the mean of sign x z(column).
COMPONENTS: dict[str, tuple[tuple[str, int], ...]] = {
    INTRADAY: (("drawdown_from_high_pct", -1), ("realized_vol_15m", 1), ("return_15m", -1)),
    DAILY: (("drawdown_pct", -1), ("volatility_20d", 1), ("momentum_7d_pct", -1)),
}
KEYS = {INTRADAY: ["symbol", "bar_ts"], DAILY: ["symbol", "trade_date"]}


class StressError(ValueError):
    """The data cannot tune a stress threshold (too few dates, no drop in a part...)."""


@dataclass
class StressIndex:
    """The fitted index: component means and deviations, and the alarm threshold."""

    name: str
    components: tuple[tuple[str, int], ...]
    means: dict[str, float]
    stds: dict[str, float]
    threshold: float = np.inf

    @property
    def features(self) -> list[str]:
        return [column for column, _ in self.components]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        total = np.zeros(len(frame))
        for column, sign in self.components:
            values = frame[column].to_numpy(dtype=float)
            total += sign * (values - self.means[column]) / self.stds[column]
        return total / len(self.components)

    def alarm(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score(frame) >= self.threshold


def _future_min(close: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per row i, the lowest close of rows i+1..last[i] (NaN when there is none)."""
    n = len(close)
    index = np.arange(n)
    widest = int(np.max(last - index)) if n else 0
    lowest = np.full(n, np.inf)
    for k in range(1, widest + 1):
        ahead = index + k
        within = ahead <= last
        candidate = np.where(within, close[np.minimum(ahead, n - 1)], np.inf)
        lowest = np.minimum(lowest, candidate)
    return np.where(np.isinf(lowest), np.nan, lowest)


def intraday_frame(
    intraday: pd.DataFrame,
    *,
    drop_pct: float = DEFAULT_INTRADAY_DROP_PCT,
    horizon_minutes: int = DEFAULT_INTRADAY_HORIZON_MINUTES,
) -> pd.DataFrame:
    """Intraday rows with their label (see module), labelled rows only, in key order."""
    frame = intraday.copy()
    frame["bar_ts"] = pd.to_datetime(frame["bar_ts"], utc=True)
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    frame = frame.sort_values(["symbol", "trade_date", "bar_ts"], kind="stable")
    frame = frame.reset_index(drop=True)
    labels = np.full(len(frame), np.nan)
    horizon = np.timedelta64(horizon_minutes, "m").astype("timedelta64[ns]")
    for _, rows in frame.groupby(["symbol", "trade_date"], sort=False):
        where = rows.index.to_numpy()
        ts = rows["bar_ts"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
        close = rows["close"].to_numpy(dtype=float)
        last = np.searchsorted(ts, ts + horizon, side="right") - 1
        lowest = _future_min(close, last)
        complete = ts + horizon <= ts[-1]
        label = (lowest / close - 1) * 100 <= -drop_pct
        labels[where] = np.where(complete & ~np.isnan(lowest), label.astype(float), np.nan)
    frame[LABEL] = labels
    return _usable(frame, INTRADAY)


def daily_frame(
    daily: pd.DataFrame,
    *,
    drop_pct: float = DEFAULT_DAILY_DROP_PCT,
    horizon_days: int = DEFAULT_DAILY_HORIZON_DAYS,
) -> pd.DataFrame:
    """Daily rows with momentum and their label (see module), labelled rows, key order."""
    frame = daily.copy()
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    frame = frame.sort_values(["symbol", "trade_date"], kind="stable").reset_index(drop=True)
    frame["momentum_7d_pct"] = (
        frame["close"].astype(float) / frame["sma_7"].astype(float) - 1
    ) * 100
    close = frame.groupby("symbol", sort=False)["close"]
    ahead = pd.concat([close.shift(-k) for k in range(1, horizon_days + 1)], axis=1)
    lowest = ahead.min(axis=1, skipna=False).astype(float)
    label = (lowest / frame["close"].astype(float) - 1) * 100 <= -drop_pct
    frame[LABEL] = np.where(lowest.isna(), np.nan, label.astype(float))
    return _usable(frame, DAILY)


def _usable(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    columns = [column for column, _ in COMPONENTS[name]]
    usable = np.isfinite(frame[[*columns, LABEL]].to_numpy(dtype=float)).all(axis=1)
    frame = frame[usable].reset_index(drop=True)
    frame[LABEL] = frame[LABEL].astype(int)
    return frame


@dataclass
class StressResult:
    index: StressIndex
    card: dict[str, Any]
    frame: pd.DataFrame = field(repr=False)
    split: TimeSplit = field(repr=False)

    @property
    def name(self) -> str:
        return self.card["name"]

    # The registry stores `model`; the direction result has `pipeline` in its place.
    @property
    def model(self) -> StressIndex:
        return self.index


def _part_scores(alarms: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    precision, recall, f1 = precision_recall_f1(alarms, labels)
    return {
        "rows": len(labels),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "alarms": int(np.sum(alarms)),
        "drops": int(np.sum(labels)),
    }


def _labelled(
    features: pd.DataFrame, kind: str, drop_pct: float | None, horizon: int | None
) -> tuple[pd.DataFrame, float, int, int, str]:
    """The rows with their label: (frame, drop %, horizon, split embargo, horizon unit)."""
    if kind == INTRADAY:
        drop = DEFAULT_INTRADAY_DROP_PCT if drop_pct is None else drop_pct
        ahead = DEFAULT_INTRADAY_HORIZON_MINUTES if horizon is None else horizon
        frame = intraday_frame(features, drop_pct=drop, horizon_minutes=ahead)
        embargo, unit = 0, "minutes"  # a label never leaves its session
    elif kind == DAILY:
        drop = DEFAULT_DAILY_DROP_PCT if drop_pct is None else drop_pct
        ahead = DEFAULT_DAILY_HORIZON_DAYS if horizon is None else horizon
        frame = daily_frame(features, drop_pct=drop, horizon_days=ahead)
        embargo, unit = ahead, "trading days"
    else:
        raise StressError(f"unknown stress index kind {kind!r}: {INTRADAY} or {DAILY}")
    if drop <= 0 or ahead < 1:
        raise StressError("the drop (%) must be positive and the horizon at least 1")
    if frame.empty:
        raise StressError(f"{kind}: no row has every component and a complete horizon")
    return frame, drop, ahead, embargo, unit


def _metrics(
    alarms: np.ndarray, labels: np.ndarray, split: TimeSplit, threshold: float
) -> dict[str, dict[str, Any]]:
    """Precision, recall and F1 of the index and of always-alarm, on validate and test."""
    metrics: dict[str, dict[str, Any]] = {}
    for part in ("validate", "test"):
        mask = getattr(split, part)
        metrics[part] = {
            "stress_index": {**_part_scores(alarms[mask], labels[mask]), "threshold": threshold},
            "always_alarm": _part_scores(np.ones(int(mask.sum()), bool), labels[mask]),
        }
    return metrics


def train_stress(
    features: pd.DataFrame,
    kind: str = INTRADAY,
    *,
    drop_pct: float | None = None,
    horizon: int | None = None,
) -> StressResult:
    """Fit the z-scores on the train part, tune the threshold on validate, score on test.

    (Over 60 lines only by its model card, one dict literal of what a reader needs.)

    `kind`: INTRADAY (rows of intraday_features; `horizon` in minutes) or DAILY (rows of
    daily_features; `horizon` in trading days).
    """
    frame, drop, ahead, embargo, unit = _labelled(features, kind, drop_pct, horizon)
    try:
        split = time_split(frame["trade_date"], embargo=embargo)
    except ValueError as error:
        raise StressError(f"{kind}: {error}") from None

    components = COMPONENTS[kind]
    train = frame[split.train]
    means = {column: float(train[column].mean()) for column, _ in components}
    stds = {column: float(train[column].std(ddof=0)) or 1.0 for column, _ in components}
    index = StressIndex(kind, components, means, stds)
    labels = frame[LABEL].to_numpy(dtype=bool)
    scores = index.score(frame)
    for part in ("validate", "test"):
        if not labels[getattr(split, part)].any():
            raise StressError(
                f"{kind}: the {part} part has no drop of {drop}% within {ahead} {unit}; "
                "lower the drop or load more data"
            )
    tuned = best_f1_threshold(scores[split.validate], labels[split.validate])
    index.threshold = tuned.threshold
    alarms = scores >= tuned.threshold

    metrics = _metrics(alarms, labels, split, tuned.threshold)
    key = KEYS[kind]
    ranges = split.ranges(frame["trade_date"])
    card = {
        "name": kind,
        "kind": "stress_index",
        "description": "composite stress index with an F1-tuned alarm threshold",
        "features": index.features,
        "formula": "( -z(drawdown) + z(volatility) - z(momentum) ) / 3, z from the train part",
        "components": [{"column": column, "sign": sign} for column, sign in components],
        "label": f"a drop of at least {drop}% of the close within the next {ahead} {unit}",
        "params": {
            "drop_pct": drop,
            "horizon": ahead,
            "horizon_unit": unit,
            "threshold": tuned.threshold,
            "means": means,
            "stds": stds,
        },
        "training_range": ranges["train"],
        "ranges": ranges,
        "symbols": sorted(frame["symbol"].unique().tolist()),
        "rows": {part: int(getattr(split, part).sum()) for part in ("train", "validate", "test")},
        "data_fingerprint": fingerprint(train, key, [*key, *index.features, LABEL]),
        "fingerprint_of": f"train rows: {', '.join(key)}, components, label in key order",
        "metrics": metrics,
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return StressResult(index=index, card=card, frame=frame, split=split)
