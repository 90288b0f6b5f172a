"""Warehouse loaders: processed parquet in the lake -> Snowflake or PostgreSQL.

A stage: imports only the shared core (`stocklake`). Airflow tasks and the CLI
call `load_daily`, `load_realtime` and `run_query`.
"""

from loaders.load import (
    LoadError,
    LoadSummary,
    load_daily,
    load_realtime,
    load_table,
    local_run_id,
    run_query,
)
from loaders.tables import DAILY_METRICS, LOAD_AUDIT, REALTIME_WINDOW_METRICS
from loaders.transform import SchemaDriftError
from loaders.warehouse import connect_warehouse

__all__ = [
    "DAILY_METRICS",
    "LOAD_AUDIT",
    "REALTIME_WINDOW_METRICS",
    "LoadError",
    "LoadSummary",
    "SchemaDriftError",
    "connect_warehouse",
    "load_daily",
    "load_realtime",
    "load_table",
    "local_run_id",
    "run_query",
]
