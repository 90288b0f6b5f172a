"""Every statement the dashboard runs, and running them: the warehouse, read-only.

The statements are portable (PostgreSQL and Snowflake): no `::` casts, no ILIKE, no
PG-only functions; window functions and `DATE 'YYYY-MM-DD'` literals work on both.
The only values put into SQL are symbols that pass `stocklake.schemas.is_symbol` and
dates that are `datetime.date` objects (validated before they get here); table and
column names come from the core contracts and `loaders`.

Results are cached a short while (`st.cache_data`), keyed by the statement and the
warehouse it ran on. A failure becomes a `WarehouseProblem`: the pages show its message
and the command to run, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import streamlit as st

import loaders
from loaders import SchemaNotFoundError, run_query
from loaders.tables import DRIFT_ALERTS, QUALITY_RESULTS
from stocklake.governance import DRIFT_ALERTS_COLUMNS, QUALITY_RESULTS_COLUMNS, CheckStatus
from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    DAILY_METRICS_COLUMNS,
    REALTIME_WINDOW_COLUMNS,
    SMA_WINDOWS,
    VOLATILITY_WINDOW,
    ZSCORE_WINDOW,
    Columns,
    is_symbol,
    sql_type,
)
from stocklake.settings import Settings

DAILY_FEATURES_TABLE = loaders.DAILY_FEATURES.name
INTRADAY_FEATURES_TABLE = loaders.INTRADAY_FEATURES.name
DAILY_METRICS_TABLE = loaders.DAILY_METRICS.name
REALTIME_TABLE = loaders.REALTIME_WINDOW_METRICS.name
AUDIT_TABLE = loaders.LOAD_AUDIT.name
QUALITY_TABLE = QUALITY_RESULTS.name
DRIFT_TABLE = DRIFT_ALERTS.name
# The tables the pipeline page counts, in pipeline order.
COUNTED_TABLES = (
    DAILY_METRICS_TABLE,
    DAILY_FEATURES_TABLE,
    INTRADAY_FEATURES_TABLE,
    REALTIME_TABLE,
    AUDIT_TABLE,
)
# Read by the pipeline page too (not counted): the governance tables' checks and alerts.
GOVERNANCE_TABLES = (QUALITY_TABLE, DRIFT_TABLE)

# How long a result is reused: the daily tables change once a day, the windows often.
DAILY_TTL_S = 60
REALTIME_TTL_S = 5
# Longer ranges than this are read as weekly points (aggregated in SQL).
DAILY_POINTS_MAX_DAYS = 2 * 366
RECENT_LOADS = 20
RECENT_CHECKS = 200  # of the latest checked run, problems first
RECENT_DRIFT_ALERTS = 50
# Windows of each size per symbol the real-time page draws (8 hours of 15m windows).
RECENT_WINDOWS = 32
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def column(columns: Columns, name: str) -> str:
    """`name`, checked against a core column list (a renamed column fails at import)."""
    if name not in dict(columns):
        raise KeyError(f"{name} is not a column of the contract")
    return name


# Column names used below, each checked against its contract.
SYMBOL = column(DAILY_METRICS_COLUMNS, "symbol")
TRADE_DATE = column(DAILY_METRICS_COLUMNS, "trade_date")
OPEN, HIGH, LOW, CLOSE = (
    column(DAILY_METRICS_COLUMNS, f"daily_{part}") for part in ("open", "high", "low", "close")
)
VOLUME = column(DAILY_METRICS_COLUMNS, "daily_volume")
RETURN_PCT = column(DAILY_METRICS_COLUMNS, "return_pct")
SMA_COLUMNS = tuple(column(DAILY_FEATURES_COLUMNS, f"sma_{n}") for n in SMA_WINDOWS)
VOLATILITY = column(DAILY_FEATURES_COLUMNS, f"volatility_{VOLATILITY_WINDOW}d")
DRAWDOWN = column(DAILY_FEATURES_COLUMNS, "drawdown_pct")
ZSCORE = column(DAILY_FEATURES_COLUMNS, f"return_zscore_{ZSCORE_WINDOW}d")
FEATURE_COLUMNS = (*SMA_COLUMNS, VOLATILITY, DRAWDOWN, ZSCORE)
WINDOW_COLUMNS = tuple(
    column(REALTIME_WINDOW_COLUMNS, name)
    for name in (
        "symbol",
        "window_size",
        "window_start",
        "window_end",
        "avg_price",
        "volatility",
        "total_volume",
        "tick_count",
    )
)
AUDIT_COLUMNS = tuple(
    name
    for name in (
        "started_at",
        "table_name",
        "status",
        "load_mode",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "rows_rejected",
        "duration_seconds",
        "pipeline_run_id",
        "error",
    )
    if name in loaders.LOAD_AUDIT.column_names
)
QUALITY_COLUMNS = tuple(
    column(QUALITY_RESULTS_COLUMNS, name)
    for name in (
        "status",
        "dataset",
        "partition_name",
        "check_name",
        "severity",
        "observed",
        "expected",
        "detail",
        "checked_at",
        "run_id",
    )
)
DRIFT_COLUMNS = tuple(
    column(DRIFT_ALERTS_COLUMNS, name)
    for name in (
        "trade_date",
        "symbol",
        "dataset",
        "metric",
        "observed",
        "mean",
        "stddev",
        "zscore",
        "threshold",
        "window_days",
        "run_id",
        "created_at",
    )
)


class WarehouseProblem(Exception):
    """Why a page has nothing to show, and the command that fixes it."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.message = message
        self.command = command


class WarehouseUnreachable(WarehouseProblem):
    pass


class TableMissing(WarehouseProblem):
    pass


# The command that fills each table (what a page says when it is missing or empty).
FILL_COMMAND = {
    DAILY_METRICS_TABLE: "make run  (or: stocklake spark daily && stocklake load daily)",
    DAILY_FEATURES_TABLE: "stocklake spark features && stocklake load features",
    INTRADAY_FEATURES_TABLE: "stocklake spark features && stocklake load features",
    REALTIME_TABLE: "stocklake spark stream && stocklake load realtime",
    AUDIT_TABLE: "stocklake load daily",
    QUALITY_TABLE: "make run  (or: stocklake check daily_metrics --date YYYY-MM-DD)",
    DRIFT_TABLE: "make run  (or: stocklake drift --date YYYY-MM-DD)",
}


# --- literals: only validated values go into SQL ----------------------------------------
def symbol_list(symbols: Iterable[str]) -> str:
    """`'AAPL', 'MSFT'` for an IN list; every symbol must follow the contract's rule."""
    chosen = list(symbols)
    for symbol in chosen:
        if not isinstance(symbol, str) or not is_symbol(symbol):
            raise ValueError(f"{symbol!r} is not a symbol")
    if not chosen:
        raise ValueError("no symbols given")
    return ", ".join(f"'{symbol}'" for symbol in chosen)


def date_literal(day: date) -> str:
    """`DATE 'YYYY-MM-DD'` (both warehouses) from a real date (re-parsed to be sure)."""
    return f"DATE '{date.fromisoformat(day.isoformat()).isoformat()}'"


def schema_of(settings: Settings) -> str:
    """The schema the dashboard reads: WAREHOUSE_SCHEMA, or SNOWFLAKE_SCHEMA on Snowflake."""
    if settings.warehouse_kind == "snowflake":
        name = settings.snowflake_schema or ""
    else:
        name = settings.warehouse_schema
    if not _SCHEMA.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain schema name")
    return name


def table(settings: Settings, name: str) -> str:
    """`schema.table`: qualified, so a schema without the table never falls through to
    another one on the search path (PostgreSQL's `public`)."""
    if name not in COUNTED_TABLES + GOVERNANCE_TABLES:
        raise ValueError(f"{name} is not a dashboard table")
    return f"{schema_of(settings)}.{name}"


def double(settings: Settings) -> str:
    """The warehouse's double type, for CAST (from the core's column-type table)."""
    return sql_type("double", settings.warehouse_kind)


# --- statements (pure: unit-tested without a warehouse) -----------------------------------
def bounds_sql(settings: Settings) -> str:
    return (
        f"SELECT MIN({TRADE_DATE}) AS first_date, MAX({TRADE_DATE}) AS last_date,"
        f" COUNT(*) AS row_count FROM {table(settings, DAILY_METRICS_TABLE)}"
    )


def symbols_sql(settings: Settings) -> str:
    return (
        f"SELECT DISTINCT {SYMBOL} AS symbol FROM {table(settings, DAILY_METRICS_TABLE)}"
        " ORDER BY symbol"
    )


def _range_filter(symbols: Iterable[str], start: date, end: date) -> str:
    return (
        f"{SYMBOL} IN ({symbol_list(symbols)})"
        f" AND {TRADE_DATE} BETWEEN {date_literal(start)} AND {date_literal(end)}"
    )


def overview_sql(settings: Settings, symbols: Iterable[str], start: date, end: date) -> str:
    """Per symbol and trading day: close, % change, volume and share of the day's volume."""
    return (
        f"SELECT {SYMBOL} AS symbol, {TRADE_DATE} AS period, {CLOSE} AS close,"
        f" {RETURN_PCT} AS change_pct, {VOLUME} AS volume,"
        f" 100 * CAST({VOLUME} AS {double(settings)})"
        f" / NULLIF(SUM({VOLUME}) OVER (PARTITION BY {TRADE_DATE}), 0) AS volume_share_pct"
        f" FROM {table(settings, DAILY_METRICS_TABLE)} WHERE {_range_filter(symbols, start, end)}"
        " ORDER BY symbol, period"
    )


def weekly_overview_sql(settings: Settings, symbols: Iterable[str], start: date, end: date) -> str:
    """As `overview_sql`, one row per symbol and week (its last trading day's close, the
    week's volume, the change from the previous week's close): for long ranges."""
    week = f"DATE_TRUNC('week', {TRADE_DATE})"
    return (
        "WITH ranked AS ("
        f" SELECT {SYMBOL} AS symbol, {TRADE_DATE} AS period, {CLOSE} AS close, {week} AS week,"
        f" ROW_NUMBER() OVER (PARTITION BY {SYMBOL}, {week} ORDER BY {TRADE_DATE} DESC) AS rn,"
        f" SUM({VOLUME}) OVER (PARTITION BY {SYMBOL}, {week}) AS volume"
        f" FROM {table(settings, DAILY_METRICS_TABLE)} WHERE {_range_filter(symbols, start, end)}"
        "), weekly AS (SELECT symbol, period, close, week, volume FROM ranked WHERE rn = 1)"
        " SELECT symbol, period, close,"
        " 100 * (close / LAG(close) OVER (PARTITION BY symbol ORDER BY period) - 1) AS change_pct,"
        f" volume, 100 * CAST(volume AS {double(settings)})"
        " / NULLIF(SUM(volume) OVER (PARTITION BY week), 0) AS volume_share_pct"
        " FROM weekly ORDER BY symbol, period"
    )


def bars_sql(settings: Settings, symbol: str, start: date, end: date) -> str:
    """One symbol's daily OHLCV in [start, end]."""
    return (
        f"SELECT {TRADE_DATE} AS trade_date, {OPEN} AS open, {HIGH} AS high, {LOW} AS low,"
        f" {CLOSE} AS close, {VOLUME} AS volume FROM {table(settings, DAILY_METRICS_TABLE)}"
        f" WHERE {_range_filter([symbol], start, end)} ORDER BY trade_date"
    )


def features_sql(settings: Settings, symbol: str, start: date, end: date) -> str:
    """One symbol's rolling features in [start, end]."""
    return (
        f"SELECT {TRADE_DATE} AS trade_date, {', '.join(FEATURE_COLUMNS)}"
        f" FROM {table(settings, DAILY_FEATURES_TABLE)} WHERE {_range_filter([symbol], start, end)}"
        " ORDER BY trade_date"
    )


def recent_windows_sql(settings: Settings, count: int = RECENT_WINDOWS) -> str:
    """The latest `count` windows of each size per symbol, newest first (`recency` 1)."""
    names = ", ".join(WINDOW_COLUMNS)
    return (
        f"SELECT {names}, recency FROM (SELECT {names}, ROW_NUMBER() OVER"
        " (PARTITION BY symbol, window_size ORDER BY window_start DESC) AS recency"
        f" FROM {table(settings, REALTIME_TABLE)}) latest WHERE recency <= {int(count)}"
        " ORDER BY symbol, window_size, window_start"
    )


def recent_loads_sql(settings: Settings, limit: int = RECENT_LOADS) -> str:
    return (
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {table(settings, AUDIT_TABLE)}"
        f" ORDER BY started_at DESC LIMIT {int(limit)}"
    )


def latest_checks_sql(settings: Settings, limit: int = RECENT_CHECKS) -> str:
    """The checks of the run that stored checks last: failed first, then warned, passed."""
    rank = " ".join(
        f"WHEN '{status.value}' THEN {n}"
        for n, status in enumerate((CheckStatus.FAILED, CheckStatus.WARNED, CheckStatus.PASSED))
    )
    source = table(settings, QUALITY_TABLE)
    return (
        f"SELECT {', '.join(QUALITY_COLUMNS)} FROM {source} WHERE run_id ="
        f" (SELECT run_id FROM {source} ORDER BY checked_at DESC LIMIT 1)"
        f" ORDER BY CASE status {rank} ELSE 3 END, dataset, partition_name, check_name"
        f" LIMIT {int(limit)}"
    )


def recent_drift_sql(settings: Settings, limit: int = RECENT_DRIFT_ALERTS) -> str:
    """The drift alerts of the latest trade dates, the largest |z-score| first each day."""
    return (
        f"SELECT {', '.join(DRIFT_COLUMNS)} FROM {table(settings, DRIFT_TABLE)}"
        f" ORDER BY trade_date DESC, ABS(zscore) DESC, symbol, metric LIMIT {int(limit)}"
    )


def count_sql(settings: Settings, name: str) -> str:
    return f"SELECT COUNT(*) AS row_count FROM {table(settings, name)}"


# --- running them -----------------------------------------------------------------------
def warehouse_label(settings: Settings) -> str:
    """Which warehouse and schema the dashboard reads (shown in the sidebar; a cache key)."""
    if settings.warehouse_kind == "snowflake":
        where = f"{settings.snowflake_account}/{settings.snowflake_database}"
        return f"snowflake {where}.{settings.snowflake_schema}"
    where = f"{settings.postgres_host}:{settings.postgres_port}/{settings.warehouse_db}"
    return f"postgres {where}.{settings.warehouse_schema}"


def to_frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    """Rows as a DataFrame: lower-case names (Snowflake's are upper), Decimals as floats."""
    frame = pd.DataFrame.from_records(rows, columns=[name.lower() for name in columns])
    for name in frame.columns:
        if frame[name].dtype == object and frame[name].map(lambda v: isinstance(v, Decimal)).any():
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def _problem(error: Exception, name: str) -> WarehouseProblem:
    """What went wrong, for people: unreachable, a missing table, or the query's error."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, SchemaNotFoundError):
        return WarehouseUnreachable(text, "stocklake up  (or: make up)")
    if "does not exist" in text or "not authorized" in text:
        return TableMissing(f"table {name} is not in the warehouse yet", FILL_COMMAND[name])
    if isinstance(error, OSError) or "OperationalError" in type(error).__name__:
        return WarehouseUnreachable(
            f"the warehouse is not reachable: {text}", "stocklake up  (or: make run)"
        )
    return WarehouseProblem(f"the query on {name} failed: {text}", "stocklake status")


def fetch(settings: Settings, statement: str, name: str) -> pd.DataFrame:
    """Run one read-only statement (WAREHOUSE_SCHEMA / SNOWFLAKE_SCHEMA) as a DataFrame."""
    try:
        columns, rows = run_query(settings, statement)
    except Exception as error:  # every failure becomes a message on the page
        raise _problem(error, name) from error
    return to_frame(columns, rows)


# `_settings` is not hashed (leading underscore): `warehouse` names it in the cache key.
@st.cache_data(ttl=DAILY_TTL_S, show_spinner=False, max_entries=256)
def _cached_daily(_settings: Settings, statement: str, name: str, warehouse: str) -> pd.DataFrame:
    return fetch(_settings, statement, name)


@st.cache_data(ttl=REALTIME_TTL_S, show_spinner=False, max_entries=16)
def _cached_realtime(
    _settings: Settings, statement: str, name: str, warehouse: str
) -> pd.DataFrame:
    return fetch(_settings, statement, name)


def _daily(settings: Settings, statement: str, name: str) -> pd.DataFrame:
    return _cached_daily(settings, statement, name, warehouse_label(settings))


def clear_cache() -> None:
    """Forget every cached result (the sidebar's refresh button)."""
    _cached_daily.clear()
    _cached_realtime.clear()


# --- what the pages ask -----------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """The daily data in the warehouse: its first and last trade date, and row count."""

    first: date
    last: date
    rows: int

    def default_range(self, days: int = 365) -> tuple[date, date]:
        """The last `days` of data (a sensible first view of a long history)."""
        return max(self.first, self.last - timedelta(days=days)), self.last


def daily_bounds(settings: Settings) -> Bounds:
    """Bounds of daily_metrics; TableMissing when it is missing or empty."""
    frame = _daily(settings, bounds_sql(settings), DAILY_METRICS_TABLE)
    row = frame.iloc[0]
    if not int(row["row_count"]) or row["first_date"] is None:
        raise TableMissing(
            f"table {DAILY_METRICS_TABLE} is empty", FILL_COMMAND[DAILY_METRICS_TABLE]
        )
    return Bounds(_as_date(row["first_date"]), _as_date(row["last_date"]), int(row["row_count"]))


def _as_date(value: object) -> date:
    return pd.Timestamp(value).date()


def daily_symbols(settings: Settings) -> list[str]:
    frame = _daily(settings, symbols_sql(settings), DAILY_METRICS_TABLE)
    return [str(symbol) for symbol in frame["symbol"]]


def overview(settings: Settings, symbols: list[str], start: date, end: date) -> pd.DataFrame:
    """symbol, period, close, change_pct, volume, volume_share_pct (weekly if long)."""
    weekly = (end - start).days > DAILY_POINTS_MAX_DAYS
    build = weekly_overview_sql if weekly else overview_sql
    frame = _daily(settings, build(settings, symbols, start, end), DAILY_METRICS_TABLE)
    frame["period"] = pd.to_datetime(frame["period"])
    frame.attrs["resolution"] = "week" if weekly else "day"
    return frame


def symbol_history(
    settings: Settings, symbol: str, start: date, end: date
) -> tuple[pd.DataFrame, TableMissing | None]:
    """One symbol's bars with its features (NaN where `daily_features` has none), and why
    the features are missing, if they are."""
    bars = _daily(settings, bars_sql(settings, symbol, start, end), DAILY_METRICS_TABLE)
    bars["trade_date"] = pd.to_datetime(bars["trade_date"])
    try:
        features = _daily(
            settings, features_sql(settings, symbol, start, end), DAILY_FEATURES_TABLE
        )
    except TableMissing as problem:
        return bars.assign(**{name: float("nan") for name in FEATURE_COLUMNS}), problem
    features["trade_date"] = pd.to_datetime(features["trade_date"])
    merged = bars.merge(features, on="trade_date", how="left")
    if features.empty and not bars.empty:
        return merged, TableMissing(
            f"no {DAILY_FEATURES_TABLE} rows for {symbol} in this range",
            FILL_COMMAND[DAILY_FEATURES_TABLE],
        )
    return merged, None


def recent_windows(settings: Settings) -> pd.DataFrame:
    """The recent 15m and 1h windows per symbol; `recency` 1 is the latest (empty when
    none are loaded)."""
    statement = recent_windows_sql(settings)
    frame = _cached_realtime(settings, statement, REALTIME_TABLE, warehouse_label(settings))
    for name in ("window_start", "window_end"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def recent_loads(settings: Settings, limit: int = RECENT_LOADS) -> pd.DataFrame:
    return _daily(settings, recent_loads_sql(settings, limit), AUDIT_TABLE)


def latest_checks(settings: Settings) -> pd.DataFrame:
    """The latest checked run's quality results (empty when no check ran yet)."""
    return _daily(settings, latest_checks_sql(settings), QUALITY_TABLE)


def recent_drift(settings: Settings) -> pd.DataFrame:
    """The latest dates' drift alerts (empty when there are none)."""
    return _daily(settings, recent_drift_sql(settings), DRIFT_TABLE)


def row_counts(settings: Settings) -> pd.DataFrame:
    """table, rows (None when the table is not there yet), fill_command."""
    records = []
    for name in COUNTED_TABLES:
        try:
            rows: int | None = int(_daily(settings, count_sql(settings, name), name).iloc[0, 0])
        except TableMissing:
            rows = None
        records.append({"table": name, "rows": rows, "fill_command": FILL_COMMAND[name]})
    return pd.DataFrame.from_records(records)
