"""PostgreSQL warehouse (psycopg 3): binary COPY into a temp table, then one MERGE."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

from loaders.tables import (
    LOAD_AUDIT,
    MANAGED_TABLES,
    SCHEMA_MIGRATIONS,
    AddColumn,
    CreateTable,
    SetFillFactor,
    Step,
    WarehouseTable,
    pending_migrations,
)
from loaders.warehouse import AuditRecord, MergeCounts, check_columns, fold_loaded_partitions
from stocklake.settings import Settings

# Rows per encoded COPY chunk: bounds the extra memory to a few tens of MB.
STAGE_BATCH_ROWS = 100_000


class PostgresWarehouse:
    kind = "postgres"

    def __init__(self, settings: Settings, schema: str = "public") -> None:
        self.settings = settings
        self.schema = schema
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection:
        # Autocommit outside explicit `transaction()` blocks, so every block is a real
        # BEGIN..COMMIT and never a savepoint inside some implicit transaction.
        conn = psycopg.connect(
            self.settings.postgres_dsn(), autocommit=True, application_name="stocklake-loader"
        )
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
        return conn

    def __enter__(self) -> PostgresWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _name(self, table: WarehouseTable | str) -> sql.Identifier:
        name = table if isinstance(table, str) else table.name
        return sql.Identifier(self.schema, name)

    # --- schema -----------------------------------------------------------------
    def _create_sql(self, table: WarehouseTable) -> sql.Composed:
        columns = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(name),
                sql.SQL(table.sql_type("postgres", name)),
                sql.SQL(" NOT NULL" if table.not_null(name) else ""),
            )
            for name in table.column_names
        ]
        return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))").format(
            self._name(table),
            sql.SQL(", ").join(columns),
            sql.SQL(", ").join(map(sql.Identifier, table.key)),
        )

    def _step_sql(self, step: Step) -> sql.Composed:
        if isinstance(step, CreateTable):
            return self._create_sql(step.table)
        if isinstance(step, AddColumn):
            return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                self._name(step.table),
                sql.Identifier(step.column),
                sql.SQL(step.table.sql_type("postgres", step.column)),
            )
        if isinstance(step, SetFillFactor):
            return sql.SQL("ALTER TABLE {} SET (fillfactor = {})").format(
                self._name(step.table), sql.Literal(int(step.percent))
            )
        raise TypeError(f"unknown migration step {step!r}")

    def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; returns the versions applied."""
        with self.conn.transaction():
            # Two loaders starting together must not both run the same DDL.
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", ("stocklake-migrate:" + self.schema,)
            )
            self.conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            self.conn.execute(self._create_sql(SCHEMA_MIGRATIONS))
            applied = {
                row[0]
                for row in self.conn.execute(
                    sql.SQL("SELECT version FROM {}").format(self._name(SCHEMA_MIGRATIONS))
                )
            }
            pending = pending_migrations(applied)
            for migration in pending:
                for step in migration.steps:
                    self.conn.execute(self._step_sql(step))
                self.conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (version, description, applied_at) VALUES (%s, %s, %s)"
                    ).format(self._name(SCHEMA_MIGRATIONS)),
                    (migration.version, migration.description, datetime.now(UTC)),
                )
        check_columns(
            {table.name: self.table_columns(table) for table in MANAGED_TABLES}, "PostgreSQL"
        )
        return [migration.version for migration in pending]

    def table_columns(self, table: WarehouseTable) -> dict[str, str]:
        """Column name -> data type of the live table (empty if it does not exist)."""
        rows = self.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, table.name),
        ).fetchall()
        return {name: kind for name, kind in rows}

    def loaded_partitions(self, table: WarehouseTable) -> dict[str, str]:
        rows = self.conn.execute(
            sql.SQL(
                "SELECT source_partitions FROM {} WHERE table_name = %s AND status = 'succeeded'"
                " ORDER BY finished_at, run_id"
            ).format(self._name(LOAD_AUDIT)),
            (table.name,),
        ).fetchall()
        return fold_loaded_partitions([row[0] for row in rows])

    # --- the load -----------------------------------------------------------------
    def write_load(self, table: WarehouseTable, rows: pa.Table, audit: AuditRecord) -> MergeCounts:
        """Stage, merge and audit in one transaction: all of it or none of it."""
        stage = sql.Identifier("stage_" + table.name)
        with self.conn.transaction():
            # Room for the key join of stage and table to hash in memory.
            self.conn.execute("SET LOCAL work_mem = '256MB'")
            # One writer per table at a time; readers are not blocked.
            self.conn.execute(
                sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(self._name(table))
            )
            self._create_stage(table, stage)
            self._stage(table, stage, rows)
            self.conn.execute(sql.SQL("ANALYZE {}").format(stage))
            loaded_at = datetime.now(UTC)
            counts = self._merge(table, stage, audit.run_id, loaded_at)
            self._insert_audit(
                audit.finished(
                    datetime.now(UTC),
                    status="succeeded",
                    rows_inserted=counts.inserted,
                    rows_updated=counts.updated,
                )
            )
        return counts

    def _create_stage(self, table: WarehouseTable, stage: sql.Identifier) -> None:
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(table.sql_type("postgres", name)))
            for name in table.source_names
        ]
        self.conn.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                stage, sql.SQL(", ").join(columns)
            )
        )

    def _stage(self, table: WarehouseTable, stage: sql.Identifier, rows: pa.Table) -> None:
        encoder = ArrowToPostgresBinaryEncoder(rows.schema)
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            stage, sql.SQL(", ").join(map(sql.Identifier, table.source_names))
        )
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(encoder.write_header())
            for batch in rows.to_batches(max_chunksize=STAGE_BATCH_ROWS):
                copy.write(encoder.write_batch(batch))
            copy.write(encoder.finish())

    def _merge(
        self,
        table: WarehouseTable,
        stage: sql.Identifier,
        run_id: str,
        loaded_at: datetime,
    ) -> MergeCounts:
        target = self._name(table)
        on = sql.SQL(" AND ").join(
            sql.SQL("t.{0} = s.{0}").format(sql.Identifier(name)) for name in table.key
        )
        changed = sql.SQL(" OR ").join(
            sql.SQL("t.{0} IS DISTINCT FROM s.{0}").format(sql.Identifier(name))
            for name in table.value_names
        )
        assignments = sql.SQL(", ").join(
            sql.SQL("{0} = s.{0}").format(sql.Identifier(name)) for name in table.value_names
        )
        columns = sql.SQL(", ").join(map(sql.Identifier, table.source_names))
        values = sql.SQL(", ").join(
            sql.SQL("s.{}").format(sql.Identifier(name)) for name in table.source_names
        )
        statement = sql.SQL(
            "MERGE INTO {target} AS t USING {stage} AS s ON {on}"
            " WHEN MATCHED AND ({changed}) THEN UPDATE SET {assignments},"
            " loaded_at = %(loaded_at)s, run_id = %(run_id)s"
            " WHEN NOT MATCHED THEN INSERT ({columns}, loaded_at, run_id)"
            " VALUES ({values}, %(loaded_at)s, %(run_id)s)"
        ).format(
            target=target,
            stage=stage,
            on=on,
            changed=changed,
            assignments=assignments,
            columns=columns,
            values=values,
        )
        # PostgreSQL 15's MERGE reports only a total; this transaction's own row
        # counters for the table split it exactly, at no cost (the table is locked).
        before = self._transaction_counts(table)
        self.conn.execute(statement, {"loaded_at": loaded_at, "run_id": run_id})
        after = self._transaction_counts(table)
        return MergeCounts(inserted=after[0] - before[0], updated=after[1] - before[1])

    def _transaction_counts(self, table: WarehouseTable) -> tuple[int, int]:
        """Rows inserted and updated in `table` by the current transaction so far."""
        row = self.conn.execute(
            "SELECT pg_stat_get_xact_tuples_inserted(%(t)s::regclass),"
            " pg_stat_get_xact_tuples_updated(%(t)s::regclass)",
            {"t": sql.Identifier(self.schema, table.name).as_string(self.conn)},
        ).fetchone()
        return int(row[0]), int(row[1])

    def _insert_audit(self, audit: AuditRecord) -> None:
        values = audit.values()
        self.conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                self._name(LOAD_AUDIT),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder(name) for name in values),
            ),
            values,
        )

    def record_failure(self, audit: AuditRecord) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()
        with self.conn.transaction():
            self._insert_audit(audit)

    # --- ad-hoc queries -------------------------------------------------------------
    def query(self, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.execute(statement.encode())
            if cursor.description is None:
                return [], []
            return [column.name for column in cursor.description], cursor.fetchall()
