"""The README documents every setting, and .env.example lists them all."""

from __future__ import annotations

from pathlib import Path

from stocklake.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ALIASES = sorted(field.alias for field in Settings.model_fields.values() if field.alias)


def test_every_setting_is_in_env_example() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    defined = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    assert set(ALIASES) <= defined, sorted(set(ALIASES) - defined)


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [alias for alias in ALIASES if f"`{alias}`" not in readme]
    assert not missing, missing


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
