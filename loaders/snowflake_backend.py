"""Snowflake warehouse: write_pandas into a temporary table, then one MERGE.

Values travel as server-side bound parameters (paramstyle qmark) or through
write_pandas; timestamps are bound as ISO strings and cast, since a bound
datetime would arrive as TIMESTAMP_NTZ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from loaders import rows as rows_sql
from loaders.tables import (
    LOAD_AUDIT,
    LOAD_COLUMNS,
    MANAGED_TABLES,
    SCHEMA_MIGRATIONS,
    AddColumn,
    CreateTable,
    SetFillFactor,
    Step,
    WarehouseTable,
    pending_migrations,
)
from loaders.warehouse import (
    AuditRecord,
    DeadLoad,
    MergeCounts,
    SchemaNotFoundError,
    check_columns,
    fold_loaded_partitions,
    stale_cause,
)
from stocklake.schemas import WarehouseKind
from stocklake.settings import Settings


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


class SnowflakeWarehouse:
    kind = WarehouseKind.SNOWFLAKE

    def __init__(self, settings: Settings, schema: str | None = None) -> None:
        import snowflake.connector

        params: dict[str, Any] = {
            "account": settings.snowflake_account,
            "user": settings.snowflake_user,
            "role": settings.snowflake_role,
            "warehouse": settings.snowflake_warehouse,
            "database": settings.snowflake_database,
            "schema": schema or settings.snowflake_schema,
            "paramstyle": "qmark",
            "application": "stocklake",
        }
        if settings.snowflake_private_key_path:
            params["authenticator"] = "SNOWFLAKE_JWT"
            params["private_key_file"] = str(settings.snowflake_private_key_path)
        else:
            params["password"] = settings.snowflake_password
        self.schema = params["schema"]
        self.conn = snowflake.connector.connect(
            **{key: value for key, value in params.items() if value}
        )
        # Snowflake connects even when the schema does not exist, with none in use.
        if self._execute("SELECT CURRENT_SCHEMA()").fetchone()[0] is None:
            self.conn.close()
            raise SchemaNotFoundError(
                f"schema {self.schema!r} does not exist in Snowflake database "
                f"{settings.snowflake_database}: give an existing one (--schema, "
                "SNOWFLAKE_SCHEMA)"
            )

    def __enter__(self) -> SnowflakeWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _execute(self, statement: str, params: tuple[Any, ...] | None = None) -> Any:
        return self.conn.cursor().execute(statement, params)

    # --- schema -----------------------------------------------------------------
    def _create_sql(self, table: WarehouseTable) -> str:
        columns = ", ".join(
            f"{name} {table.sql_type(self.kind, name)}"
            + (" NOT NULL" if table.not_null(name) else "")
            for name in table.column_names
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {table.name} ({columns},"
            f" PRIMARY KEY ({', '.join(table.key)}))"
        )

    def _step_sql(self, step: Step) -> str | None:
        if isinstance(step, SetFillFactor):
            return None  # a PostgreSQL storage setting; Snowflake manages its own
        if isinstance(step, CreateTable):
            return self._create_sql(step.table)
        if isinstance(step, AddColumn):
            return (
                f"ALTER TABLE {step.table.name} ADD COLUMN IF NOT EXISTS {step.column}"
                f" {step.table.sql_type(self.kind, step.column)}"
            )
        raise TypeError(f"unknown migration step {step!r}")

    def migrate(self) -> list[int]:
        """Apply pending migrations. Snowflake commits each DDL on its own, so every
        step is idempotent and a migration is recorded only after all its steps."""
        self._execute(self._create_sql(SCHEMA_MIGRATIONS))
        applied = {
            int(row[0])
            for row in self._execute(f"SELECT version FROM {SCHEMA_MIGRATIONS.name}").fetchall()
        }
        pending = pending_migrations(applied)
        for migration in pending:
            for step in migration.steps:
                statement = self._step_sql(step)
                if statement is not None:
                    self._execute(statement)
            self._execute(
                f"INSERT INTO {SCHEMA_MIGRATIONS.name} (version, description, applied_at)"
                " SELECT ?, ?, CAST(? AS TIMESTAMP_TZ)"
                f" WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA_MIGRATIONS.name} WHERE version = ?)",
                (
                    migration.version,
                    migration.description,
                    _ts(datetime.now(UTC)),
                    migration.version,
                ),
            )
        check_columns(
            {table.name: self.table_columns(table) for table in MANAGED_TABLES}, "Snowflake"
        )
        return [migration.version for migration in pending]

    def table_columns(self, table: WarehouseTable) -> dict[str, str]:
        rows = self._execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = CURRENT_SCHEMA() AND table_name = ?"
            " ORDER BY ordinal_position",
            (table.name.upper(),),
        ).fetchall()
        return {name.lower(): kind for name, kind in rows}

    def loaded_partitions(self, table: WarehouseTable) -> dict[str, str]:
        rows = self._execute(
            f"SELECT source_partitions FROM {LOAD_AUDIT.name}"
            " WHERE table_name = ? AND status = 'succeeded' ORDER BY finished_at, run_id",
            (table.name,),
        ).fetchall()
        return fold_loaded_partitions([row[0] for row in rows])

    # --- the load -----------------------------------------------------------------
    def write_load(self, table: WarehouseTable, rows: pa.Table, audit: AuditRecord) -> MergeCounts:
        """Stage first (DDL and COPY commit on their own in Snowflake, and touch only the
        session's temporary table), then MERGE and audit in one transaction."""
        stage = "stage_" + table.name
        self._stage(table, stage, rows, audit.run_id, datetime.now(UTC))
        self._execute("BEGIN TRANSACTION")
        try:
            counts = self._merge(table, stage)
            self._write_audit(
                audit.finished(
                    datetime.now(UTC),
                    status="succeeded",
                    rows_inserted=counts.inserted,
                    rows_updated=counts.updated,
                )
            )
            self._execute("COMMIT")
        except BaseException:
            self._execute("ROLLBACK")
            raise
        return counts

    def _stage(
        self, table: WarehouseTable, stage: str, rows: pa.Table, run_id: str, loaded_at: datetime
    ) -> None:
        """The rows plus their loaded_at and run_id, so the MERGE needs no parameters."""
        # Looked up at call time so fakesnow's patch of the module attribute applies.
        import snowflake.connector.pandas_tools as pandas_tools

        names = table.source_names + tuple(name for name, _ in LOAD_COLUMNS)
        columns = ", ".join(f"{name} {table.sql_type(self.kind, name)}" for name in names)
        self._execute(f"CREATE OR REPLACE TEMPORARY TABLE {stage} ({columns})")
        if rows.num_rows == 0:
            return
        rows = rows.append_column(
            "loaded_at", pa.array([loaded_at] * rows.num_rows, pa.timestamp("us", tz="UTC"))
        ).append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
        # Arrow-backed columns keep int64 exact and nulls as nulls through parquet.
        frame = rows.to_pandas(types_mapper=pd.ArrowDtype)
        success, _, loaded, _ = pandas_tools.write_pandas(
            self.conn,
            frame,
            stage.upper(),
            quote_identifiers=False,
            auto_create_table=False,
            use_logical_type=True,
        )
        if not success or loaded != rows.num_rows:
            raise RuntimeError(f"write_pandas staged {loaded} of {rows.num_rows} rows into {stage}")

    def _merge(self, table: WarehouseTable, stage: str) -> MergeCounts:
        on = " AND ".join(f"t.{name} = s.{name}" for name in table.key)
        changed = " OR ".join(f"t.{name} IS DISTINCT FROM s.{name}" for name in table.value_names)
        written = table.value_names + tuple(name for name, _ in LOAD_COLUMNS)
        assignments = ", ".join(f"{name} = s.{name}" for name in written)
        inserted = table.source_names + tuple(name for name, _ in LOAD_COLUMNS)
        columns = ", ".join(inserted)
        values = ", ".join(f"s.{name}" for name in inserted)
        cursor = self._execute(
            f"MERGE INTO {table.name} AS t USING {stage} AS s ON {on}"
            f" WHEN MATCHED AND ({changed}) THEN UPDATE SET {assignments}"
            f" WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
        )
        row = cursor.fetchone()
        names = [column.name.lower() for column in cursor.description]
        counts = dict(zip(names, row, strict=True))
        return MergeCounts(
            inserted=int(counts.get("number of rows inserted", 0)),
            updated=int(counts.get("number of rows updated", 0)),
        )

    def _insert_audit(self, audit: AuditRecord) -> None:
        values = audit.values()
        placeholders = ", ".join(
            "CAST(? AS TIMESTAMP_TZ)" if dict(LOAD_AUDIT.columns)[name] == "timestamp" else "?"
            for name in values
        )
        params = tuple(
            _ts(value) if isinstance(value, datetime) else value for value in values.values()
        )
        self._execute(
            f"INSERT INTO {LOAD_AUDIT.name} ({', '.join(values)}) VALUES ({placeholders})",
            params,
        )

    def _write_audit(self, audit: AuditRecord) -> None:
        """The load's audit row as `audit` says (run inside the caller's transaction)."""
        self._execute(f"DELETE FROM {LOAD_AUDIT.name} WHERE run_id = ?", (audit.run_id,))
        self._insert_audit(audit)

    def begin_load(self, audit: AuditRecord) -> None:
        """Commit the `running` row (autocommit) before the load does anything else."""
        self._insert_audit(audit)

    def record_failure(self, audit: AuditRecord) -> None:
        self._execute("BEGIN TRANSACTION")
        try:
            self._write_audit(audit)
            self._execute("COMMIT")
        except BaseException:
            self._execute("ROLLBACK")
            raise

    def fail_dead_loads(self, table_name: str | None = None) -> list[DeadLoad]:
        """Mark `failed` the `running` loads (of `table_name`, or all) known to be gone:
        their process ran on this host and has exited, or they began too long ago."""
        rows = self._execute(
            "SELECT run_id, table_name, loader_host, loader_pid, started_at"
            f" FROM {LOAD_AUDIT.name} WHERE status = 'running'"
            + (" AND table_name = ?" if table_name else "")
            + " ORDER BY started_at",
            (table_name,) if table_name else None,
        ).fetchall()
        now = datetime.now(UTC)
        dead = []
        for run_id, name, host, pid, started_at in rows:
            cause = stale_cause(host, None if pid is None else int(pid), started_at, now)
            if cause is None:
                continue
            self._execute(
                f"UPDATE {LOAD_AUDIT.name} SET status = 'failed', error = ?,"
                " finished_at = CAST(? AS TIMESTAMP_TZ) WHERE run_id = ? AND status = 'running'",
                (cause, _ts(now), run_id),
            )
            dead.append(DeadLoad(run_id, name, cause))
        return dead

    # --- a few rows by key (governance tables) -----------------------------------------
    def write_rows(
        self, table: WarehouseTable, rows: Sequence[Mapping[str, Any]], *, replace: bool = True
    ) -> None:
        """Write `rows` by key: replace an existing row, or keep it (`replace=False`)."""
        rows_sql.snowflake_write(self.conn, table, rows, replace=replace)

    def read_rows(
        self,
        table: WarehouseTable,
        where: Mapping[str, Any],
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows whose columns equal `where`, ordered descending by `order_by`."""
        return rows_sql.snowflake_read(self.conn, table, where, order_by, limit)

    # --- ad-hoc queries -------------------------------------------------------------
    def query(
        self, statement: str, *, allow_multiple: bool = False, read_only: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run `statement` with the configured role (`read_only` is that role's business
        here); one statement unless `allow_multiple`, the last result returned."""
        cursor = self.conn.cursor()
        if allow_multiple:
            cursor.execute(statement, num_statements=0)
        else:
            cursor.execute(statement)
        result = _result(cursor)
        # Snowflake's nextset() resets the cursor first: only after a multi-statement call.
        while allow_multiple and cursor.nextset():
            result = _result(cursor)
        return result


def _result(cursor: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    if not cursor.description:
        return [], []
    return [column.name for column in cursor.description], [tuple(row) for row in cursor.fetchall()]
