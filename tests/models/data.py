"""The bundled real files as the warehouse's feature tables, computed with pandas.

The pandas reference of the README's "Rolling features" (tests/reference.py, which the
Spark job is checked against); no Spark here, so the models' tests are fast.
"""

from __future__ import annotations

from functools import cache

import pandas as pd

from tests import reference


@cache
def _daily() -> pd.DataFrame:
    return reference.daily_features(reference.daily_metrics())


def daily_features() -> pd.DataFrame:
    """daily_features rows of the seven bundled symbols (2019-2020), a fresh copy."""
    return _daily().copy()


@cache
def _intraday() -> pd.DataFrame:
    return reference.intraday_features(reference.minute_bars())


def intraday_features() -> pd.DataFrame:
    """intraday_features rows of the bundled META minute file (one week), a fresh copy."""
    return _intraday().copy()
