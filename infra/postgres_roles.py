"""Least privilege for the embedded PostgreSQL: roles, passwords, grants and pg_hba.conf.

`stocklake up` provisions with the superuser, the only time it is used:
- the pipeline's role (POSTGRES_USER) owns the warehouse schema and its tables, and may
  connect to the warehouse database and create temporary tables there; nothing else;
- the read-only role (POSTGRES_READONLY_USER) may SELECT the warehouse tables, those
  the pipeline creates later too (default privileges), and nothing else;
- Airflow's role (AIRFLOW_DB_USER) owns the Airflow metadata database;
- every login needs its password (scram-sha-256, pg_hba.conf below); an empty password
  setting means a generated one, kept in `Settings.postgres_passwords_file` (0600).

A cluster created before this (trust on loopback, everything owned by the superuser)
is converted by the same steps: passwords set, objects handed to their roles, then
pg_hba.conf rewritten and reloaded.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import psycopg
from psycopg import sql

from stocklake.settings import PostgresLogin, Settings

HBA_CONF = """\
# Written by stocklake (infra/postgres_roles.py): every role logs in with its password.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""

CLIENT_LOGINS: tuple[PostgresLogin, ...] = ("pipeline", "reader", "airflow")
ALL_LOGINS: tuple[PostgresLogin, ...] = (*CLIENT_LOGINS, "superuser")
# Relations handed to their role's owner: tables, views, materialized views, foreign
# and partitioned tables (their indexes and owned sequences follow), then sequences.
_TABLE_KINDS = ("r", "p", "v", "m", "f")


class ProvisionError(RuntimeError):
    """The roles cannot be provisioned as configured; the message says which setting."""


def ensure_passwords(settings: Settings) -> None:
    """Generate (0600) a password for every login whose password setting is empty."""
    path = settings.postgres_passwords_file
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    generated = {name: value for name, value in stored.items() if isinstance(value, str)}
    changed = not path.exists()
    for login in ALL_LOGINS:
        user, password = settings.postgres_login(login)
        if not password and not generated.get(user):
            generated[user] = secrets.token_urlsafe(24)
            changed = True
    if changed:
        _write_private(path, json.dumps(generated, indent=2, sort_keys=True) + "\n")
    os.chmod(path, 0o600)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, never visible half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def _check_distinct(settings: Settings) -> None:
    names = {login: settings.postgres_login(login)[0] for login in ALL_LOGINS}
    if len(set(names.values())) != len(names):
        raise ProvisionError(
            "POSTGRES_USER, POSTGRES_READONLY_USER, AIRFLOW_DB_USER and POSTGRES_SUPERUSER must "
            f"name four different roles (got {', '.join(names.values())})"
        )


def provision_cluster(settings: Settings, data_dir: Path) -> None:
    """Roles, databases, ownership and grants, then password-only pg_hba.conf (idempotent)."""
    _check_distinct(settings)
    ensure_passwords(settings)
    with psycopg.connect(settings.postgres_dsn("postgres", "superuser"), autocommit=True) as conn:
        _provision_roles(conn, settings)
        provision_databases(conn, settings)
    create_warehouse_schema(settings, settings.warehouse_schema)
    _hand_over_airflow_db(settings)
    if write_hba(data_dir):
        with psycopg.connect(settings.postgres_dsn("postgres", "superuser")) as conn:
            conn.execute("SELECT pg_reload_conf()")
    _wait_for_password_auth(settings)


def _provision_roles(conn: psycopg.Connection, settings: Settings) -> None:
    for login in CLIENT_LOGINS:
        user, password = settings.postgres_login(login)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                " NOBYPASSRLS PASSWORD {}"
            ).format(sql.SQL(verb), sql.Identifier(user), sql.Literal(password))
        )
    reader = sql.Identifier(settings.postgres_readonly_user)
    # Belt and braces: the read-only role's transactions are read-only by default too.
    conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(reader))
    user, password = settings.postgres_login("superuser")
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)
        )
    )


def provision_databases(conn: psycopg.Connection, settings: Settings) -> None:
    """The warehouse and Airflow databases, with CONNECT for their roles only."""
    pipeline = sql.Identifier(settings.postgres_user)
    reader = sql.Identifier(settings.postgres_readonly_user)
    airflow = sql.Identifier(settings.airflow_db_user)
    for database, owner in ((settings.warehouse_db, None), (settings.airflow_db, airflow)):
        name = sql.Identifier(database)
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if found.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        if owner is not None:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, owner))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
    warehouse = sql.Identifier(settings.warehouse_db)
    conn.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(warehouse, pipeline)
    )
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(warehouse, reader))
    # The maintenance database is the superuser's alone.
    conn.execute("REVOKE ALL ON DATABASE postgres FROM PUBLIC")


def create_warehouse_schema(settings: Settings, schema: str) -> None:
    """`schema` in the warehouse database, owned by the pipeline's role with every table
    in it, and readable (now and for tables created later) by the read-only role."""
    pipeline = sql.Identifier(settings.postgres_user)
    reader = sql.Identifier(settings.postgres_readonly_user)
    name = sql.Identifier(schema)
    dsn = settings.postgres_dsn(settings.warehouse_db, "superuser")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(name, pipeline)
        )
        conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(name, pipeline))
        _hand_over(conn, [schema], settings.postgres_user)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, reader))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(name, reader))
        conn.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON TABLES TO {}").format(
                pipeline, reader
            )
        )


def _hand_over_airflow_db(settings: Settings) -> None:
    """Airflow's tables (created by the superuser before roles existed) to Airflow's role."""
    dsn = settings.postgres_dsn(settings.airflow_db, "superuser")
    with psycopg.connect(dsn, autocommit=True) as conn:
        schemas = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
                " AND nspname <> 'information_schema'"
            )
        ]
        _hand_over(conn, schemas, settings.airflow_db_user)


def _hand_over(conn: psycopg.Connection, schemas: list[str], owner: str) -> None:
    """Make `owner` the owner of every relation in `schemas` that it does not own yet."""
    query = (
        "SELECT n.nspname, c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY(%s) AND c.relkind = ANY(%s)"
        " AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)"
    )
    # Tables first: the sequences they own move with them; then any sequence left.
    for kinds, statement in (
        (list(_TABLE_KINDS), sql.SQL("ALTER TABLE {} OWNER TO {}")),
        (["S"], sql.SQL("ALTER SEQUENCE {} OWNER TO {}")),
    ):
        for schema, name in conn.execute(query, (schemas, kinds, owner)).fetchall():
            conn.execute(statement.format(sql.Identifier(schema, name), sql.Identifier(owner)))


def write_hba(data_dir: Path) -> bool:
    """Password authentication for every role; True when the file had to change."""
    path = data_dir / "pg_hba.conf"
    if path.exists() and path.read_text() == HBA_CONF:
        return False
    owner = data_dir.stat()
    _write_private(path, HBA_CONF)
    os.chown(path, owner.st_uid, owner.st_gid)
    return True


def _wait_for_password_auth(settings: Settings, timeout: float = 10.0) -> None:
    """Until the reloaded pg_hba.conf is in force: a wrong password must be refused."""
    user, _ = settings.postgres_login("superuser")
    dsn = psycopg.conninfo.make_conninfo(
        settings.postgres_dsn("postgres", "superuser"), password="not-" + secrets.token_hex(8)
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
        except psycopg.OperationalError:
            return
        time.sleep(0.1)
    raise ProvisionError(f"PostgreSQL still lets {user} in without its password after a reload")
