"""The settings' defaults live in code; .env.example documents exactly those values."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stocklake.settings import PROJECT_ROOT, Settings, SettingsError, load_settings


def _env_example() -> dict[str, str]:
    values = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _as_env(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_env_example_documents_the_defaults_in_code() -> None:
    documented = _env_example()
    for name, field in Settings.model_fields.items():
        variable = field.alias or name.upper()
        assert variable in documented, f"{variable} is not in .env.example"
        assert documented[variable] == _as_env(field.default), (
            f"{variable}: .env.example says {documented[variable]!r}, "
            f"the code's default is {field.default!r}"
        )


def test_settings_work_from_an_installed_package(tmp_path: Path) -> None:
    # The core package copied alone (as an installed wheel has it), run from an empty
    # folder with no .env: the defaults in code, and the state folder under the cwd.
    site = tmp_path / "site"
    shutil.copytree(PROJECT_ROOT / "stocklake", site / "stocklake")
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import json; from stocklake.settings import load_settings; s = load_settings(); "
        "print(json.dumps([s.s3_endpoint_url, s.lake_bucket, s.postgres_port, "
        "s.warehouse_kind, str(s.state_path), bool(s.s3_secret_key)]))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    endpoint, bucket, port, kind, state, has_secret = json.loads(done.stdout)
    assert (endpoint, bucket, port, kind) == (
        "http://127.0.0.1:59000",
        "stocklake",
        55432,
        "postgres",
    )
    assert state == str(work / ".state")
    assert has_secret and (work / ".state" / "s3" / "credentials.json").exists()


def test_embedded_s3_secret_is_generated_once_per_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("S3_SECRET_KEY", "")
    first = load_settings()
    assert len(first.s3_secret_key) >= 24
    stored = first.s3_credentials_file
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert load_settings().s3_secret_key == first.s3_secret_key
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "other"))
    assert load_settings().s3_secret_key != first.s3_secret_key


def test_a_remote_endpoint_needs_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIR", str(tmp_path))
    monkeypatch.setenv("S3_SECRET_KEY", "")
    monkeypatch.setenv("S3_ENDPOINT_URL", "https://s3.eu-west-1.amazonaws.com")
    with pytest.raises(SettingsError, match="S3_SECRET_KEY is not set"):
        load_settings()
    assert not (tmp_path / "s3").exists()
    monkeypatch.setenv("S3_SECRET_KEY", "given")
    assert load_settings().s3_secret_key == "given"
