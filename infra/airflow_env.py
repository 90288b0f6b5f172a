"""Airflow's environment, built from the one settings object.

Used by `stocklake airflow ...`, `make run` and `make airflow`: the metadata DB
is the local (or configured) PostgreSQL, DAGs come from `dags/`, and the
connections the DAGs use are `AIRFLOW_CONN_*` variables built from the same
settings as every stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stocklake.settings import PROJECT_ROOT, Settings

S3_CONN_ID = "stocklake_s3"
POSTGRES_CONN_ID = "stocklake_postgres"
SNOWFLAKE_CONN_ID = "stocklake_snowflake"
SPARK_CONN_ID = "stocklake_spark"
ADMIN_USER = "admin"


def airflow_home(settings: Settings) -> Path:
    return settings.airflow_home or settings.state_path / "airflow"


def connections(settings: Settings) -> dict[str, str]:
    """`AIRFLOW_CONN_*` variables (JSON form) for the lake, warehouse and Spark."""
    conns: dict[str, dict] = {
        S3_CONN_ID: {
            "conn_type": "aws",
            "login": settings.s3_access_key,
            "password": settings.s3_secret_key,
            "extra": {
                "endpoint_url": settings.s3_endpoint_url,
                "region_name": settings.s3_region,
                "config_kwargs": {"s3": {"addressing_style": "path"}},
            },
        },
        POSTGRES_CONN_ID: _postgres_connection(settings),
    }
    if settings.snowflake_account:
        extra = {
            "account": settings.snowflake_account,
            "warehouse": settings.snowflake_warehouse,
            "database": settings.snowflake_database,
            "role": settings.snowflake_role,
        }
        if settings.snowflake_private_key_path:
            extra["private_key_file"] = str(settings.snowflake_private_key_path)
        conns[SNOWFLAKE_CONN_ID] = {
            "conn_type": "snowflake",
            "login": settings.snowflake_user,
            "password": settings.snowflake_password or "",
            "schema": settings.snowflake_schema,
            "extra": {k: v for k, v in extra.items() if v},
        }
    if settings.spark_master.startswith("spark://"):
        host, _, port = settings.spark_master.removeprefix("spark://").rpartition(":")
        conns[SPARK_CONN_ID] = {
            "conn_type": "spark",
            "host": f"spark://{host}",
            "port": int(port),
        }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in conns.items()}


def _postgres_connection(settings: Settings) -> dict:
    """The warehouse as the pipeline's role, never the superuser."""
    login, password = settings.postgres_login("pipeline")
    return {
        "conn_type": "postgres",
        "host": settings.postgres_host,
        "port": settings.postgres_port,
        "login": login,
        "password": password,
        "schema": settings.warehouse_db,
    }


def airflow_env(settings: Settings) -> dict[str, str]:
    """Every variable Airflow needs; merged over the caller's environment."""
    # The metadata database as Airflow's own role, which owns it.
    db_url = settings.postgres_sqlalchemy_url(settings.airflow_db, login="airflow")
    env = {
        "AIRFLOW_HOME": str(airflow_home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # psycopg 3 for both the sync and the async engine Airflow 3 opens.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,
        # The default of 32 idle workers costs over 1 GiB on a 2-core machine.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
        "AIRFLOW__API__HOST": settings.bind_host,
        "AIRFLOW__API__PORT": str(settings.airflow_port),
        "AIRFLOW__API__BASE_URL": f"http://{settings.bind_host}:{settings.airflow_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
            f"http://{settings.bind_host}:{settings.airflow_port}/execution/"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "STOCKLAKE_HOME": str(PROJECT_ROOT),
    }
    env.update(connections(settings))
    return env


def passwords_file(settings: Settings) -> Path:
    return airflow_home(settings) / "simple_auth_manager_passwords.json.generated"


def secure_passwords_file(settings: Settings) -> Path:
    """Make the UI's generated-password file private (0600) before and after Airflow
    writes it: Airflow appends to an existing file, keeping its mode, and would create
    a missing one world-readable."""
    path = passwords_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return path


def admin_login(settings: Settings) -> tuple[str, str | None]:
    """The UI login: user name and, once the api-server generated it, the password."""
    try:
        passwords = json.loads(passwords_file(settings).read_text())
    except (OSError, ValueError):
        return ADMIN_USER, None
    return ADMIN_USER, passwords.get(ADMIN_USER)
