"""A private warehouse schema's rows for tests: fill a table with COPY, drop the schema."""

from __future__ import annotations

import io

import pandas as pd
import psycopg
from psycopg import sql

from stocklake.settings import Settings


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def copy_rows(settings: Settings, schema: str, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame (its columns in the table's order) into schema.table, as the pipeline."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, na_rep="\\N")
    copy = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT csv, NULL '\\N')").format(
        sql.Identifier(schema),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name in frame.columns),
    )
    with (
        psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn,
        conn.cursor().copy(copy) as out,
    ):
        out.write(buffer.getvalue())
