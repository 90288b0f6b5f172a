"""The time split: train on the earliest dates, validate on the next, test on the last.

By distinct dates (every symbol of a date is in the same part), never shuffled. A label
looks ahead (the next day, the next minutes), so the last `embargo` dates of the train
and validate parts are dropped: no training label is computed from a validation or test
date's prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN_FRACTION = 0.6
VALIDATE_FRACTION = 0.2


@dataclass(frozen=True)
class TimeSplit:
    train: np.ndarray  # boolean masks over the frame's rows
    validate: np.ndarray
    test: np.ndarray

    def ranges(self, dates: pd.Series) -> dict[str, list[str]]:
        """[first, last] date of each part, ISO strings."""
        out = {}
        for part in ("train", "validate", "test"):
            chosen = dates[getattr(self, part)]
            out[part] = [str(chosen.min()), str(chosen.max())] if len(chosen) else []
        return out


def time_split(
    dates: pd.Series,
    *,
    train_fraction: float = TRAIN_FRACTION,
    validate_fraction: float = VALIDATE_FRACTION,
    embargo: int = 1,
) -> TimeSplit:
    unique = np.sort(pd.unique(dates))
    n = len(unique)
    n_train = round(n * train_fraction)
    n_validate = round(n * validate_fraction)
    if n_train - embargo < 1 or n_validate - embargo < 1 or n - n_train - n_validate < 1:
        raise ValueError(
            f"{n} distinct dates are too few for a train/validate/test split "
            f"({train_fraction:.0%} / {validate_fraction:.0%} / the rest, embargo {embargo})"
        )
    train_dates = unique[: n_train - embargo]
    validate_dates = unique[n_train : n_train + n_validate - embargo]
    test_dates = unique[n_train + n_validate :]
    values = dates.to_numpy()
    return TimeSplit(
        train=np.isin(values, train_dates),
        validate=np.isin(values, validate_dates),
        test=np.isin(values, test_dates),
    )
