"""Reading the feature tables: SQL text and frames, with the query run by the caller.

The stage never connects to the warehouse itself (stages import only the core): the
CLI and the DAG run these statements with `loaders.run_query` and pass the result in
(`frame_from_result`), and the API is given a `FeatureSource`. The SQL is portable
(PostgreSQL and Snowflake): `DATE 'YYYY-MM-DD'` literals, ORDER BY, LIMIT; a symbol is
checked against the core's SYMBOL_PATTERN before it is written into a statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, Protocol

import pandas as pd

from stocklake.schemas import DAILY_FEATURES_COLUMNS, INTRADAY_FEATURES_COLUMNS, is_symbol

# The warehouse tables (loaders.DAILY_FEATURES / INTRADAY_FEATURES carry the same names).
DAILY_TABLE = "daily_features"
INTRADAY_TABLE = "intraday_features"
DAILY_COLUMNS = [name for name, _ in DAILY_FEATURES_COLUMNS]
INTRADAY_COLUMNS = [name for name, _ in INTRADAY_FEATURES_COLUMNS]

Query = Callable[[str], tuple[Sequence[str], Sequence[Sequence[Any]]]]


def _literal_symbol(symbol: str) -> str:
    if not is_symbol(symbol):
        raise ValueError(f"{symbol!r} is not a symbol")
    return "'" + symbol.replace("'", "''") + "'"


def daily_features_sql(
    start: date | None = None, end: date | None = None, table: str = DAILY_TABLE
) -> str:
    """Every daily_features row in [start, end), in key order."""
    where = []
    if start:
        where.append(f"trade_date >= DATE '{start.isoformat()}'")
    if end:
        where.append(f"trade_date < DATE '{end.isoformat()}'")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {', '.join(DAILY_COLUMNS)} FROM {table}{clause} ORDER BY symbol, trade_date"


def intraday_features_sql(table: str = INTRADAY_TABLE) -> str:
    return f"SELECT {', '.join(INTRADAY_COLUMNS)} FROM {table} ORDER BY symbol, bar_ts"


def history_sql(symbol: str, day: date, rows: int, table: str = DAILY_TABLE) -> str:
    """A symbol's last `rows` rows at or before `day` (newest first)."""
    return (
        f"SELECT {', '.join(DAILY_COLUMNS)} FROM {table} WHERE symbol = {_literal_symbol(symbol)}"
        f" AND trade_date <= DATE '{day.isoformat()}' ORDER BY trade_date DESC LIMIT {int(rows)}"
    )


def symbol_sql(symbol: str, table: str = DAILY_TABLE) -> str:
    return f"SELECT COUNT(*) FROM {table} WHERE symbol = {_literal_symbol(symbol)}"


def frame_from_result(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], expected: Sequence[str]
) -> pd.DataFrame:
    """A query's (columns, rows) as a frame with the expected lower-case columns."""
    frame = pd.DataFrame([tuple(row) for row in rows], columns=[c.lower() for c in columns])
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise ValueError(f"the query's result lacks {', '.join(missing)}")
    frame = frame[list(expected)]
    for name in expected:
        if name not in ("symbol", "trade_date", "bar_ts", "volume"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    if "trade_date" in frame and len(frame):
        frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    return frame


def read_features(query: Query, which: str) -> pd.DataFrame:
    """Every row of daily_features (`which` "daily") or intraday_features ("intraday")."""
    if which == "daily":
        statement, expected = daily_features_sql(), DAILY_COLUMNS
    elif which == "intraday":
        statement, expected = intraday_features_sql(), INTRADAY_COLUMNS
    else:
        raise ValueError(f"daily or intraday, not {which!r}")
    columns, rows = query(statement)
    return frame_from_result(columns, rows, expected)


class FeatureSource(Protocol):
    """What the prediction API reads features through."""

    def history(self, symbol: str, day: date, rows: int) -> pd.DataFrame:
        """The symbol's last `rows` daily_features rows at or before `day`, oldest first."""
        ...

    def has_symbol(self, symbol: str) -> bool: ...


class QuerySource:
    """A FeatureSource over a query function (e.g. `loaders.run_query` with settings)."""

    def __init__(self, query: Query, table: str = DAILY_TABLE) -> None:
        self.query = query
        self.table = table

    def history(self, symbol: str, day: date, rows: int) -> pd.DataFrame:
        columns, result = self.query(history_sql(symbol, day, rows, self.table))
        frame = frame_from_result(columns, result, DAILY_COLUMNS)
        return frame.iloc[::-1].reset_index(drop=True)

    def has_symbol(self, symbol: str) -> bool:
        _, result = self.query(symbol_sql(symbol, self.table))
        return bool(result and result[0][0])


class FrameSource:
    """A FeatureSource over a daily_features frame in memory."""

    def __init__(self, daily: pd.DataFrame) -> None:
        frame = daily.copy()
        frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
        self.frame = frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)

    def history(self, symbol: str, day: date, rows: int) -> pd.DataFrame:
        frame = self.frame
        chosen = frame[(frame["symbol"] == symbol) & (frame["trade_date"] <= day)]
        return chosen.tail(rows).reset_index(drop=True)

    def has_symbol(self, symbol: str) -> bool:
        return bool((self.frame["symbol"] == symbol).any())
