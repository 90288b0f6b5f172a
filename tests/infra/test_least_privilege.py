"""Least privilege on the embedded PostgreSQL, and private secret files.

Every role logs in with its password (scram-sha-256); the pipeline's role owns the
warehouse schema and nothing else; the read-only role may only read; Airflow's role owns
its database; the superuser is for `stocklake up` alone. A cluster made by an older `up`
(trust on loopback, everything owned by the superuser) is converted by the next `up`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from psycopg import sql

from infra import airflow_ui
from infra.airflow_env import admin_login, airflow_env, passwords_file
from infra.postgres import Postgres
from stocklake.settings import PostgresLogin, Settings, load_settings
from tests.private_stack import cli, stack_env

pytestmark = pytest.mark.services

LOGINS: tuple[PostgresLogin, ...] = ("pipeline", "reader", "airflow", "superuser")


def _dsn(settings: Settings, login: PostgresLogin, database: str, password: str | None) -> str:
    """A DSN for `login` with `password` instead of its own (None: no password at all)."""
    user, _ = settings.postgres_login(login)
    parts = {
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "user": user,
        "dbname": database,
        "passfile": os.devnull,  # no ~/.pgpass either
    }
    if password is not None:
        parts["password"] = password
    return psycopg.conninfo.make_conninfo(**parts)


def _refused(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as error:
        psycopg.connect(dsn, connect_timeout=5).close()
    return str(error.value)


def _database(settings: Settings, login: PostgresLogin) -> str:
    return {"airflow": settings.airflow_db, "superuser": "postgres"}.get(
        login, settings.warehouse_db
    )


@pytest.mark.parametrize("login", LOGINS)
def test_every_login_needs_its_password(stack: Settings, login: PostgresLogin) -> None:
    database = _database(stack, login)
    assert "no password supplied" in _refused(_dsn(stack, login, database, None))
    assert "password authentication failed" in _refused(_dsn(stack, login, database, "wrong"))
    with psycopg.connect(stack.postgres_dsn(database, login)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (stack.postgres_login(login)[0],)
    mode = stat.S_IMODE(stack.postgres_passwords_file.stat().st_mode)
    assert mode == 0o600, oct(mode)


def _denied(conn: psycopg.Connection, statement: str) -> str:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as error:
        conn.execute(statement)
    conn.rollback()
    return str(error.value)


def test_the_pipelines_role_owns_the_warehouse_schema_and_nothing_else(stack: Settings) -> None:
    with psycopg.connect(stack.postgres_dsn()) as conn:
        assert conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False, False, False)
        owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
            (stack.warehouse_schema,),
        ).fetchone()
        assert owner == (stack.postgres_user,)
        _denied(conn, "SELECT pg_read_file('/etc/hostname')")
        _denied(conn, "COPY (SELECT 1) TO PROGRAM 'id'")
        _denied(conn, "CREATE SCHEMA not_mine")
        conn.autocommit = True
        _denied(conn, "CREATE DATABASE not_mine")
        _denied(conn, "CREATE ROLE not_mine")
    # Airflow's metadata is not the pipeline's, nor the warehouse Airflow's.
    assert "permission denied" in _refused(stack.postgres_dsn(stack.airflow_db))
    assert "permission denied" in _refused(stack.postgres_dsn(stack.warehouse_db, "airflow"))
    with psycopg.connect(stack.postgres_dsn(stack.airflow_db, "airflow")) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        assert owner == (stack.airflow_db_user,)


def test_the_read_only_role_only_reads(stack: Settings) -> None:
    table = sql.Identifier(stack.warehouse_schema, "least_privilege_check")
    with psycopg.connect(stack.postgres_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} (n int)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
    try:
        with psycopg.connect(stack.postgres_dsn(login="reader")) as conn:
            # A table the pipeline created just now is readable (default privileges).
            assert conn.execute(sql.SQL("SELECT n FROM {}").format(table)).fetchall() == [(1,)]
            conn.rollback()
            for statement in (
                sql.SQL("INSERT INTO {} VALUES (2)").format(table),
                sql.SQL("CREATE TABLE {}.mine (n int)").format(
                    sql.Identifier(stack.warehouse_schema)
                ),
                "CREATE TEMP TABLE mine (n int)",
            ):
                with pytest.raises(psycopg.Error):
                    conn.execute(statement)
                conn.rollback()
            _denied(conn, "SELECT pg_read_file('/etc/hostname')")
    finally:
        with psycopg.connect(stack.postgres_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE {}").format(table))


def _old_trust_cluster(settings: Settings) -> Postgres:
    """A cluster as `up` made it before roles existed: trust auth, superuser-owned data."""
    postgres = Postgres(settings)
    root = postgres._choose_cluster_root()
    if postgres.run_as_postgres:
        shutil.chown(root, "postgres", "postgres")
    initdb = [str(postgres.bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres"]
    result = postgres._run([*initdb, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
    assert result.returncode == 0, result.stderr
    postgres.write_pid(postgres.start())
    trust = f"host=127.0.0.1 port={settings.postgres_port} user=postgres passfile={os.devnull}"
    with psycopg.connect(trust + " dbname=postgres", autocommit=True) as conn:
        for database in (settings.warehouse_db, settings.airflow_db):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(trust + f" dbname={settings.warehouse_db}") as conn:
        conn.execute("CREATE TABLE daily_metrics (symbol text PRIMARY KEY, close float8)")
        conn.execute("INSERT INTO daily_metrics VALUES ('AAPL', 132.69)")
    with psycopg.connect(trust + f" dbname={settings.airflow_db}") as conn:
        conn.execute("CREATE TABLE dag_run (id serial PRIMARY KEY, dag_id text)")
    return postgres


def test_up_converts_a_cluster_created_with_trust(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "state", KAFKA_STORAGE="memory")
    settings = load_settings(STATE_DIR=env["STATE_DIR"], POSTGRES_PORT=env["POSTGRES_PORT"])
    try:
        postgres = _old_trust_cluster(settings)
        assert not settings.postgres_passwords_file.exists()

        up = cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr

        assert stat.S_IMODE(settings.postgres_passwords_file.stat().st_mode) == 0o600
        hba = (postgres.data_dir / "pg_hba.conf").read_text()
        assert "trust" not in hba and "scram-sha-256" in hba
        trust = f"host=127.0.0.1 port={settings.postgres_port} user=postgres passfile={os.devnull}"
        assert "no password supplied" in _refused(trust + " dbname=postgres")
        with psycopg.connect(settings.postgres_dsn()) as conn:
            conn.execute("UPDATE daily_metrics SET close = close + 1")
            owner = conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = %s", ("daily_metrics",)
            )
            assert owner.fetchone() == (settings.postgres_user,)
        with psycopg.connect(settings.postgres_dsn(login="reader")) as conn:
            assert conn.execute("SELECT close FROM daily_metrics").fetchall() == [(133.69,)]
        with psycopg.connect(settings.postgres_dsn(settings.airflow_db, "airflow")) as conn:
            conn.execute("INSERT INTO dag_run (dag_id) VALUES ('kept')")
            owners = conn.execute(
                "SELECT relname, pg_get_userbyid(relowner) FROM pg_class"
                " WHERE relname IN ('dag_run', 'dag_run_id_seq') ORDER BY relname"
            ).fetchall()
            assert owners == [("dag_run", "airflow"), ("dag_run_id_seq", "airflow")]
        # A second `up` changes nothing and keeps the passwords.
        passwords = settings.postgres_passwords_file.read_text()
        assert cli(env, "up").returncode == 0
        assert settings.postgres_passwords_file.read_text() == passwords
    finally:
        cli(env, "down")
        pointer = tmp_path / "state" / "postgres" / "cluster-root"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)


def test_airflows_generated_admin_password_file_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(AIRFLOW_HOME=str(tmp_path / "airflow"))
    ran = SimpleNamespace(run=lambda *args, **kwargs: SimpleNamespace(returncode=0))
    monkeypatch.setattr(airflow_ui, "subprocess", ran)  # no `airflow db migrate` here
    airflow_ui.migrate(settings)  # what `make airflow` and `stocklake airflow` do first
    # Then Airflow's api-server generates the admin password, into that file.
    create = "from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import "
    create += "SimpleAuthManager; SimpleAuthManager().init()"
    result = subprocess.run(
        [sys.executable, "-c", create],
        env={**os.environ, **airflow_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    path = passwords_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_login(settings)[1] == json.loads(path.read_text())["admin"]
    # A file an earlier start left readable to everyone is made private again.
    path.chmod(0o644)
    airflow_ui.migrate(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
