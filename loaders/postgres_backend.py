"""PostgreSQL warehouse (psycopg 3): binary COPY into a temp table, then one MERGE."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

from loaders import rows as rows_sql
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
from loaders.warehouse import (
    AuditRecord,
    DeadLoad,
    MergeCounts,
    SchemaNotFoundError,
    WarehouseLogin,
    check_columns,
    fold_loaded_partitions,
    process_gone,
)
from stocklake.schemas import WarehouseKind
from stocklake.settings import Settings

# Rows per encoded COPY chunk: bounds the extra memory to a few tens of MB.
STAGE_BATCH_ROWS = 100_000
# The loader session's local buffers for its temp stage (PostgreSQL's default is 8 MB):
# a million staged rows (about 150 MB) then stay in memory for the MERGE to read instead
# of being written out and read back. Taken only as the stage grows.
STAGE_TEMP_BUFFERS = "256MB"


class PostgresWarehouse:
    kind = WarehouseKind.POSTGRES

    def __init__(
        self, settings: Settings, schema: str = "public", login: WarehouseLogin = "pipeline"
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.login = login
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection:
        # Autocommit outside explicit `transaction()` blocks, so every block is a real
        # BEGIN..COMMIT and never a savepoint inside some implicit transaction.
        conn = psycopg.connect(
            self.settings.postgres_dsn(login=self.login),
            autocommit=True,
            application_name="stocklake-loader" if self.login == "pipeline" else "stocklake-sql",
        )
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
        if found.fetchone() is None:
            conn.close()
            raise SchemaNotFoundError(
                f"schema {self.schema!r} does not exist in database {self.settings.warehouse_db}: "
                "give an existing one (--schema, WAREHOUSE_SCHEMA); `stocklake up` creates "
                "WAREHOUSE_SCHEMA on the embedded stack"
            )
        conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema)))
        # Only settable before the session's first temp table.
        conn.execute(sql.SQL("SET temp_buffers = {}").format(sql.Literal(STAGE_TEMP_BUFFERS)))
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
                sql.SQL(table.sql_type(self.kind, name)),
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
                sql.SQL(step.table.sql_type(self.kind, step.column)),
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
            self._write_audit(
                audit.finished(
                    datetime.now(UTC),
                    status="succeeded",
                    rows_inserted=counts.inserted,
                    rows_updated=counts.updated,
                )
            )
        return counts

    def _create_stage(self, table: WarehouseTable, stage: sql.Identifier) -> None:
        """A temp table, dropped at commit: no WAL, and a killed load or server leaves
        nothing behind. (An UNLOGGED stage was tried: PostgreSQL 15 killed mid-COPY then
        failed its crash recovery on the half-created table's files.)"""
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(table.sql_type(self.kind, name)))
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

    def _write_audit(self, audit: AuditRecord) -> None:
        """The load's audit row as `audit` says: inserted, or updated in place."""
        values = audit.values()
        updates = [name for name in values if name != "run_id"]
        self.conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (run_id) DO UPDATE SET {}").format(
                self._name(LOAD_AUDIT),
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder(name) for name in values),
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in updates
                ),
            ),
            values,
        )

    def begin_load(self, audit: AuditRecord) -> None:
        """Commit the `running` row, holding a session lock keyed by the load for as long
        as this session lives: a killed loader or server frees it, and only then may
        `fail_dead_loads` take the row for dead."""
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_lock(%s)", (load_lock_key(audit.run_id),))
            self._write_audit(audit)

    def record_failure(self, audit: AuditRecord) -> None:
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()
        with self.conn.transaction():
            self._write_audit(audit)

    def fail_dead_loads(self, table_name: str | None = None) -> list[DeadLoad]:
        """Mark `failed` every `running` load (of `table_name`, or all) whose session is gone."""
        audit = self._name(LOAD_AUDIT)
        rows = self.conn.execute(
            sql.SQL(
                "SELECT run_id, table_name, loader_host, loader_pid, started_at FROM {}"
                " WHERE status = 'running' AND (%s::text IS NULL OR table_name = %s)"
                " ORDER BY started_at"
            ).format(audit),
            (table_name, table_name),
        ).fetchall()
        (server_start,) = self.conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        dead = []
        for run_id, name, host, pid, started_at in rows:
            with self.conn.transaction():
                (free,) = self.conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (load_lock_key(run_id),)
                ).fetchone()
                if not free:
                    continue  # its loader's session still holds the lock: still loading
                cause = _dead_cause(host, pid, started_at, server_start)
                marked = self.conn.execute(
                    sql.SQL(
                        "UPDATE {} SET status = 'failed', error = %s, finished_at = %s"
                        " WHERE run_id = %s AND status = 'running'"
                    ).format(audit),
                    (cause, datetime.now(UTC), run_id),
                )
                if marked.rowcount:
                    dead.append(DeadLoad(run_id, name, cause))
        return dead

    # --- a few rows by key (governance tables) -----------------------------------------
    def write_rows(
        self, table: WarehouseTable, rows: Sequence[Mapping[str, Any]], *, replace: bool = True
    ) -> None:
        """Write `rows` by key: replace an existing row, or keep it (`replace=False`)."""
        rows_sql.postgres_write(self.conn, self.schema, table, rows, replace=replace)

    def read_rows(
        self,
        table: WarehouseTable,
        where: Mapping[str, Any],
        order_by: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows whose columns equal `where`, ordered descending by `order_by`."""
        return rows_sql.postgres_read(self.conn, self.schema, table, where, order_by, limit)

    # --- ad-hoc queries -------------------------------------------------------------
    def query(
        self, statement: str, *, allow_multiple: bool = False, read_only: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run `statement`: one statement only (the server refuses more, through the
        extended protocol) unless `allow_multiple`; the last result is returned."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            if read_only:
                cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(statement.encode(), prepare=not allow_multiple)
            while cursor.nextset():
                pass
            if cursor.description is None:
                return [], []
            return [column.name for column in cursor.description], cursor.fetchall()


def load_lock_key(run_id: str) -> int:
    """The advisory lock (a signed 64-bit key) a load's session holds while it runs."""
    digest = hashlib.blake2b(f"stocklake-load:{run_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _dead_cause(
    host: str | None, pid: int | None, started_at: datetime, server_start: datetime
) -> str:
    """Why a load whose session is gone never finished, as far as can be told."""
    gone = process_gone(host, pid)
    if server_start > started_at:
        restarted = f"interrupted: PostgreSQL restarted at {server_start:%Y-%m-%d %H:%M:%S %Z}"
        return restarted + (f"; {gone}" if gone else "")
    return gone or f"interrupted: its database session ended (pid {pid} on host {host})"
