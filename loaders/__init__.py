"""Warehouse loaders: processed parquet in the lake -> Snowflake or PostgreSQL.

A stage: imports only the shared core (`stocklake`). Airflow tasks and the CLI
call `load_daily`, `load_realtime` and `run_query`.
"""

from loaders.backends import connect_warehouse
from loaders.load import (
    LoadError,
    LoadSummary,
    fail_dead_loads,
    load_daily,
    load_features,
    load_kind,
    load_realtime,
    load_table,
    local_run_id,
    run_query,
)
from loaders.tables import (
    DAILY_FEATURES,
    DAILY_METRICS,
    INTRADAY_FEATURES,
    LOAD_AUDIT,
    MODEL_RUNS,
    REALTIME_WINDOW_METRICS,
)
from loaders.transform import SchemaDriftError
from loaders.warehouse import DeadLoad, SchemaNotFoundError

__all__ = [
    "DAILY_FEATURES",
    "DAILY_METRICS",
    "INTRADAY_FEATURES",
    "LOAD_AUDIT",
    "MODEL_RUNS",
    "REALTIME_WINDOW_METRICS",
    "DeadLoad",
    "LoadError",
    "LoadSummary",
    "SchemaDriftError",
    "SchemaNotFoundError",
    "connect_warehouse",
    "fail_dead_loads",
    "load_daily",
    "load_features",
    "load_kind",
    "load_realtime",
    "load_table",
    "local_run_id",
    "run_query",
]
