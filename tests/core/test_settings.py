"""Settings: overrides (a .env file, then the environment), and named errors.

The defaults in code and .env.example are checked against each other in
test_settings_defaults.py.
"""

from __future__ import annotations

import pytest

from stocklake.settings import SettingsError, load_settings


def test_a_dot_env_file_overrides_the_defaults_and_the_environment_overrides_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("STOCKLAKE_HOME", str(tmp_path))
    for name in ("LAKE_BUCKET", "POSTGRES_PORT"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    (tmp_path / ".env").write_text("LAKE_BUCKET=from-dot-env\nPOSTGRES_PORT=6000\n")
    from_file = load_settings()
    assert (from_file.lake_bucket, from_file.postgres_port) == ("from-dot-env", 6000)
    assert defaults.lake_bucket != "from-dot-env" and defaults.postgres_port != 6000
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    both = load_settings()
    assert (both.lake_bucket, both.postgres_port) == ("from-dot-env", 6543)


def test_environment_overrides_env_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKE_BUCKET", "another-bucket")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    settings = load_settings()
    assert settings.lake_bucket == "another-bucket"
    assert settings.postgres_port == 6543


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("POSTGRES_PORT", "99999", "POSTGRES_PORT='99999'"),
        ("POSTGRES_PORT", "five", "POSTGRES_PORT='five'"),
        ("WAREHOUSE", "oracle", "WAREHOUSE='oracle'"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS='localhost'"),
        ("S3_ENDPOINT_URL", "127.0.0.1:9000", "S3_ENDPOINT_URL='127.0.0.1:9000'"),
        ("LAKE_BUCKET", "ab", "LAKE_BUCKET='ab'"),
        ("LAKE_BUCKET", "lake-", "LAKE_BUCKET='lake-'"),
        ("KAFKA_BUCKET", "my_topics", "KAFKA_BUCKET='my_topics'"),
        ("S3_SERVER", "rclone", "S3_SERVER='rclone'"),
        ("KAFKA_STORAGE", "sqlite", "KAFKA_STORAGE='sqlite'"),
        ("LAKE_CONSOLE_PORT", "60000", "LAKE_CONSOLE_PORT='60000'"),
        ("SEAWEEDFS_PORTS_FROM", "65530", "SEAWEEDFS_PORTS_FROM='65530'"),
        ("TOPIC_REALTIME_PARTITIONS", "0", "TOPIC_REALTIME_PARTITIONS='0'"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert expected in str(error.value)


def test_snowflake_without_account_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAREHOUSE", "snowflake")
    monkeypatch.setenv("SNOWFLAKE_USER", "analyst")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "SNOWFLAKE_ACCOUNT" in message
    assert "SNOWFLAKE_USER" not in message.split("needs", 1)[1]


def test_snowflake_account_switches_auto_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SNOWFLAKE_ACCOUNT": "xy12345",
        "SNOWFLAKE_USER": "loader",
        "SNOWFLAKE_PASSWORD": "pw",
        "SNOWFLAKE_DATABASE": "MARKET",
        "SNOWFLAKE_SCHEMA": "CURATED",
    }.items():
        monkeypatch.setenv(name, value)
    assert load_settings().warehouse_kind == "snowflake"
    monkeypatch.setenv("WAREHOUSE", "postgres")
    assert load_settings().warehouse_kind == "postgres"


def test_postgres_passwords_resolve_in_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An empty password setting is the embedded stack's generated one (passwords.json);
    a set one wins; every caller (DSN, SQLAlchemy URL) gets the same."""
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    for name in ("POSTGRES_PASSWORD", "POSTGRES_READONLY_PASSWORD", "AIRFLOW_DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.postgres_login() == (settings.postgres_user, "")
    assert "password" not in settings.postgres_dsn()
    (tmp_path / "postgres").mkdir()
    settings.postgres_passwords_file.write_text(
        '{"stocklake_warehouse": "w-generated", "stocklake_reader": "r generated",'
        ' "airflow": "a/generated", "postgres": "s-generated"}'
    )
    assert settings.postgres_login("pipeline") == ("stocklake_warehouse", "w-generated")
    assert settings.postgres_login("superuser") == ("postgres", "s-generated")
    reader = settings.postgres_dsn(login="reader")
    assert "user=stocklake_reader" in reader and "password='r generated'" in reader
    assert settings.postgres_sqlalchemy_url("airflow", "airflow") == (
        f"postgresql+psycopg://airflow:a%2Fgenerated@{settings.postgres_host}:"
        f"{settings.postgres_port}/airflow"
    )
    monkeypatch.setenv("POSTGRES_PASSWORD", "set-by-me")
    assert load_settings().postgres_login() == ("stocklake_warehouse", "set-by-me")
