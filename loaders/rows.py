"""A few rows at a time, for the tables the pipeline fills itself (the governance tables):
write rows by key (replace, or keep an existing row) and read rows by equal columns.

Each backend calls the pair written for its client: PostgreSQL binds %s parameters
(datetimes as timestamptz); Snowflake binds qmark parameters, timestamps as ISO strings
cast to TIMESTAMP_TZ (a bound datetime would arrive as TIMESTAMP_NTZ). Bulk loads
go through the loader's COPY/write_pandas path, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from psycopg import sql

from loaders.tables import WarehouseTable

Row = Mapping[str, Any]


def _check(table: WarehouseTable, row: Row) -> None:
    unknown = set(row) - set(table.column_names)
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    missing = [name for name in table.key if row.get(name) is None]
    if missing:
        raise ValueError(f"{table.name}: key column(s) {missing} missing in {dict(row)}")


def _filters(where: Mapping[str, Any], table: WarehouseTable) -> None:
    unknown = set(where) - set(table.column_names)
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")


# ----------------------------------------------------------------- PostgreSQL


def postgres_write(
    conn: Any, schema: str, table: WarehouseTable, rows: Sequence[Row], *, replace: bool
) -> None:
    """INSERT .. ON CONFLICT (key) DO UPDATE (replace) or DO NOTHING, in one transaction."""
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cursor:
        for row in rows:
            _check(table, row)
            names = list(row)
            values = [name for name in names if name not in table.key]
            action = (
                sql.SQL("DO UPDATE SET {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
                        for name in values
                    )
                )
                if replace and values
                else sql.SQL("DO NOTHING")
            )
            statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
                sql.Identifier(schema, table.name),
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
                sql.SQL(", ").join(map(sql.Identifier, table.key)),
                action,
            )
            cursor.execute(statement, [row[name] for name in names])


def postgres_read(
    conn: Any,
    schema: str,
    table: WarehouseTable,
    where: Mapping[str, Any],
    order_by: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows whose columns equal `where`, newest first by `order_by` (descending)."""
    _filters(where, table)
    clauses = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in where]
    statement = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)),
        sql.Identifier(schema, table.name),
    )
    if clauses:
        statement += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
    if order_by:
        statement += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
            sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(name)) for name in order_by
        )
    if limit is not None:
        statement += sql.SQL(" LIMIT {}").format(sql.Literal(int(limit)))
    with conn.cursor() as cursor:
        cursor.execute(statement, list(where.values()))
        return [dict(zip(table.column_names, found, strict=True)) for found in cursor.fetchall()]


# ----------------------------------------------------------------- Snowflake


def _snowflake_value(kind: str, value: Any) -> tuple[str, Any]:
    """(placeholder, bound value) for one column kind."""
    if kind == "timestamp":
        text = None if value is None else value.astimezone(UTC).isoformat()
        return "CAST(? AS TIMESTAMP_TZ)", text
    if kind == "date":
        return "CAST(? AS DATE)", None if value is None else date.isoformat(value)
    return "?", value


def snowflake_write(
    conn: Any, table: WarehouseTable, rows: Sequence[Row], *, replace: bool
) -> None:
    """Per row: DELETE by key then INSERT (replace), or INSERT where the key is absent."""
    if not rows:
        return
    kinds = dict(table.columns)
    cursor = conn.cursor()
    cursor.execute("BEGIN")
    try:
        for row in rows:
            _check(table, row)
            names = list(row)
            bound = [_snowflake_value(kinds[name], row[name]) for name in names]
            key_sql = " AND ".join(f"{name} = ?" for name in table.key)
            key_values = [row[name] for name in table.key]
            select = f"SELECT {', '.join(place for place, _ in bound)}"
            if replace:
                cursor.execute(f"DELETE FROM {table.name} WHERE {key_sql}", key_values)
            else:
                select += f" WHERE NOT EXISTS (SELECT 1 FROM {table.name} WHERE {key_sql})"
            params = [value for _, value in bound] + ([] if replace else key_values)
            cursor.execute(f"INSERT INTO {table.name} ({', '.join(names)}) {select}", params)
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise


def snowflake_read(
    conn: Any,
    table: WarehouseTable,
    where: Mapping[str, Any],
    order_by: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows whose columns equal `where`, newest first by `order_by` (descending)."""
    _filters(where, table)
    statement = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
    if where:
        statement += " WHERE " + " AND ".join(f"{name} = ?" for name in where)
    if order_by:
        statement += " ORDER BY " + ", ".join(f"{name} DESC NULLS LAST" for name in order_by)
    if limit is not None:
        statement += f" LIMIT {int(limit)}"
    cursor = conn.cursor()
    cursor.execute(statement, list(where.values()))
    return [
        _aware(dict(zip(table.column_names, found, strict=True))) for found in cursor.fetchall()
    ]


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """Snowflake may hand back naive datetimes for TIMESTAMP_TZ through some drivers: UTC."""
    return {
        name: value.replace(tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None
        else value
        for name, value in row.items()
    }
