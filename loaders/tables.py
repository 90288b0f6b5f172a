"""The warehouse tables, defined once: columns, keys, SQL types and versioned migrations.

Source columns come from the core contracts (`stocklake.schemas`), their SQL types from
its one column-type table (`sql_type`) and their lake folders from `stocklake.lake`, so a
column the Spark jobs write is a column the warehouse has. Every identifier a loader puts
into SQL comes from this module, never from input.

To change a table: change its column list (here or in the core) and append a
`Migration` whose steps add what changed; `tests/loaders` checks that a migrated
warehouse matches these definitions on both backends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stocklake import lake
from stocklake.governance import (
    DRIFT_ALERTS_COLUMNS,
    DRIFT_ALERTS_KEY,
    INGESTION_METADATA_COLUMNS,
    INGESTION_METADATA_KEY,
    PIPELINE_RUNS_COLUMNS,
    PIPELINE_RUNS_KEY,
    QUALITY_RESULTS_COLUMNS,
    QUALITY_RESULTS_KEY,
    STAGE_RUNS_COLUMNS,
    STAGE_RUNS_KEY,
)
from stocklake.schemas import (
    DAILY_FEATURES_COLUMNS,
    DAILY_FEATURES_KEY,
    DAILY_METRICS_COLUMNS,
    DAILY_METRICS_KEY,
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_KEY,
    MODEL_RUNS_COLUMNS,
    MODEL_RUNS_KEY,
    REALTIME_WINDOW_COLUMNS,
    REALTIME_WINDOW_KEY,
    Columns,
    WarehouseKind,
    sql_type,
)

# Added by the loader to every loaded row: when and by which run it last changed.
LOAD_COLUMNS: Columns = (("loaded_at", "timestamp"), ("run_id", "string"))

AUDIT_COLUMNS: Columns = (
    ("run_id", "string"),
    ("table_name", "string"),
    ("load_mode", "string"),
    ("source_partitions", "string"),
    ("rows_read", "long"),
    ("rows_rejected", "long"),
    ("rows_duplicate", "long"),
    ("rows_staged", "long"),
    ("rows_inserted", "long"),
    ("rows_updated", "long"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("status", "string"),
    ("error", "string"),
    # Migration 3: which pipeline run loaded (an Airflow DAG run id, or
    # cli:<user>@<host>:<time>), that run's logical date, and how long the load took.
    ("pipeline_run_id", "string"),
    ("logical_date", "timestamp"),
    ("duration_seconds", "double"),
    # Migration 4: where the loading process runs, so a `running` row whose process is
    # gone can be marked `failed` by the next load or by `stocklake status`.
    ("loader_host", "string"),
    ("loader_pid", "long"),
)

MIGRATION_COLUMNS: Columns = (
    ("version", "int"),
    ("description", "string"),
    ("applied_at", "timestamp"),
)

# Lower-case, unquoted-safe names: the same spelling works on both backends.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class WarehouseTable:
    """One warehouse table: its columns (name, kind), its key and where its rows come from."""

    name: str
    columns: Columns
    key: tuple[str, ...]
    # The columns the processed parquet carries (empty for tables the loader fills itself).
    source_columns: Columns = ()
    # The processed zone's folder for this table, relative to the bucket.
    source_prefix: str = ""

    def __post_init__(self) -> None:
        names = [name for name, _ in self.columns]
        for name in (self.name, *names):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name} repeats a column")
        for name in self.key:
            if name not in names:
                raise ValueError(f"key column {name} is not a column of {self.name}")
        for column in self.source_columns:
            if column not in self.columns:
                raise ValueError(f"source column {column[0]} is not a column of {self.name}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.source_columns)

    @property
    def value_names(self) -> tuple[str, ...]:
        """Source columns that are not part of the key: the ones an update may change."""
        return tuple(name for name in self.source_names if name not in self.key)

    def sql_type(self, backend: WarehouseKind, column: str) -> str:
        """The column's SQL type on `backend` (from the core's one column-type table)."""
        return sql_type(dict(self.columns)[column], backend)

    def not_null(self, column: str) -> bool:
        return column in self.key or column in dict(LOAD_COLUMNS)


def loaded_from(name: str, columns: Columns, key: tuple[str, ...], prefix: str) -> WarehouseTable:
    """A table loaded from a processed folder: its columns plus the LOAD_COLUMNS."""
    return WarehouseTable(
        name=name,
        columns=columns + LOAD_COLUMNS,
        key=key,
        source_columns=columns,
        source_prefix=prefix,
    )


DAILY_METRICS = loaded_from(
    "daily_metrics", DAILY_METRICS_COLUMNS, DAILY_METRICS_KEY, lake.PROCESSED_HISTORICAL
)
REALTIME_WINDOW_METRICS = loaded_from(
    "realtime_window_metrics",
    REALTIME_WINDOW_COLUMNS,
    REALTIME_WINDOW_KEY,
    lake.PROCESSED_REALTIME,
)
DAILY_FEATURES = loaded_from(
    "daily_features", DAILY_FEATURES_COLUMNS, DAILY_FEATURES_KEY, lake.PROCESSED_FEATURES_DAILY
)
INTRADAY_FEATURES = loaded_from(
    "intraday_features",
    INTRADAY_FEATURES_COLUMNS,
    INTRADAY_FEATURES_KEY,
    lake.PROCESSED_FEATURES_INTRADAY,
)

MODEL_RUNS = WarehouseTable(name="model_runs", columns=MODEL_RUNS_COLUMNS, key=MODEL_RUNS_KEY)

# Governance (stocklake/governance.py): run metadata, fingerprints, quality results, drift.
PIPELINE_RUNS = WarehouseTable("pipeline_runs", PIPELINE_RUNS_COLUMNS, PIPELINE_RUNS_KEY)
STAGE_RUNS = WarehouseTable("stage_runs", STAGE_RUNS_COLUMNS, STAGE_RUNS_KEY)
INGESTION_METADATA = WarehouseTable(
    "ingestion_metadata", INGESTION_METADATA_COLUMNS, INGESTION_METADATA_KEY
)
QUALITY_RESULTS = WarehouseTable("quality_results", QUALITY_RESULTS_COLUMNS, QUALITY_RESULTS_KEY)
DRIFT_ALERTS = WarehouseTable("drift_alerts", DRIFT_ALERTS_COLUMNS, DRIFT_ALERTS_KEY)
GOVERNANCE_TABLES = (PIPELINE_RUNS, STAGE_RUNS, INGESTION_METADATA, QUALITY_RESULTS, DRIFT_ALERTS)

LOAD_AUDIT = WarehouseTable(name="load_audit", columns=AUDIT_COLUMNS, key=("run_id",))

SCHEMA_MIGRATIONS = WarehouseTable(
    name="schema_migrations", columns=MIGRATION_COLUMNS, key=("version",)
)

# What `stocklake load <kind>` loads, in order.
LOADABLE_TABLES: dict[str, tuple[WarehouseTable, ...]] = {
    "daily": (DAILY_METRICS,),
    "realtime": (REALTIME_WINDOW_METRICS,),
    "features": (DAILY_FEATURES, INTRADAY_FEATURES),
}


@dataclass(frozen=True)
class CreateTable:
    """CREATE TABLE IF NOT EXISTS with the table's current definition."""

    table: WarehouseTable


@dataclass(frozen=True)
class AddColumn:
    """ALTER TABLE ... ADD COLUMN IF NOT EXISTS, typed from the table's definition."""

    table: WarehouseTable
    column: str


@dataclass(frozen=True)
class SetFillFactor:
    """PostgreSQL only: leave room on each page so an update can stay on it (HOT)."""

    table: WarehouseTable
    percent: int


Step = CreateTable | AddColumn | SetFillFactor


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    steps: tuple[Step, ...]


# Append only; never edit an applied migration. Every step is idempotent, so a
# half-applied migration (Snowflake commits each DDL) is safe to run again.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="daily_metrics, realtime_window_metrics and load_audit",
        steps=(
            CreateTable(DAILY_METRICS),
            CreateTable(REALTIME_WINDOW_METRICS),
            CreateTable(LOAD_AUDIT),
        ),
    ),
    Migration(
        version=2,
        # Re-loads update every row: with free space on the page most updates are
        # HOT (no new index entry), about 20% faster for 1M updates.
        description="fillfactor 70 on the upserted tables (PostgreSQL)",
        steps=(
            SetFillFactor(DAILY_METRICS, 70),
            SetFillFactor(REALTIME_WINDOW_METRICS, 70),
        ),
    ),
    Migration(
        version=3,
        description="load_audit: pipeline_run_id, logical_date and duration_seconds",
        steps=(
            AddColumn(LOAD_AUDIT, "pipeline_run_id"),
            AddColumn(LOAD_AUDIT, "logical_date"),
            AddColumn(LOAD_AUDIT, "duration_seconds"),
        ),
    ),
    Migration(
        version=4,
        description="load_audit: loader_host and loader_pid (a running row's process)",
        steps=(
            AddColumn(LOAD_AUDIT, "loader_host"),
            AddColumn(LOAD_AUDIT, "loader_pid"),
        ),
    ),
    Migration(
        version=5,
        description="daily_features and intraday_features (rolling features)",
        steps=(
            CreateTable(DAILY_FEATURES),
            CreateTable(INTRADAY_FEATURES),
            SetFillFactor(DAILY_FEATURES, 70),
            SetFillFactor(INTRADAY_FEATURES, 70),
        ),
    ),
    Migration(
        version=6,
        description="model_runs (each trained model version's metrics)",
        steps=(CreateTable(MODEL_RUNS),),
    ),
    Migration(
        version=7,
        description=(
            "governance: pipeline_runs, stage_runs, ingestion_metadata, quality_results, "
            "drift_alerts"
        ),
        steps=tuple(CreateTable(table) for table in GOVERNANCE_TABLES),
    ),
    Migration(
        version=8,
        # Room on each page for every row's next version: a re-load that updates every
        # row is then all HOT updates (no index entries). 1M updates, MERGE: 2.5-3.2 s at
        # 70 (44-56% HOT) -> 1.7 s at 50 (100% HOT). Pages written before keep their fill.
        description="fillfactor 50 on the upserted tables (PostgreSQL)",
        steps=tuple(
            SetFillFactor(table, 50)
            for table in (DAILY_METRICS, REALTIME_WINDOW_METRICS, DAILY_FEATURES, INTRADAY_FEATURES)
        ),
    ),
)

# Tables a migrated warehouse must hold, with exactly these columns.
MANAGED_TABLES: tuple[WarehouseTable, ...] = (
    SCHEMA_MIGRATIONS,
    DAILY_METRICS,
    REALTIME_WINDOW_METRICS,
    LOAD_AUDIT,
    DAILY_FEATURES,
    INTRADAY_FEATURES,
    MODEL_RUNS,
    *GOVERNANCE_TABLES,
)


def pending_migrations(applied: set[int]) -> list[Migration]:
    """Migrations not yet applied, in version order."""
    versions = [migration.version for migration in MIGRATIONS]
    if versions != sorted(set(versions)):
        raise ValueError("MIGRATIONS must have unique, increasing versions")
    return [migration for migration in MIGRATIONS if migration.version not in applied]
