"""The README documents every setting, and every command it shows exists."""

from __future__ import annotations

import re
from pathlib import Path

from stocklake.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ALIASES = sorted(field.alias for field in Settings.model_fields.values() if field.alias)


def _readme_code() -> str:
    """The README's code: fenced blocks and inline code spans (prose is left out)."""
    readme = (ROOT / "README.md").read_text()
    fenced = re.findall(r"```.*?```", readme, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", readme, flags=re.S))
    return "\n".join(fenced + inline)


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [alias for alias in ALIASES if f"`{alias}`" not in readme]
    assert not missing, missing


def test_every_make_target_the_readme_shows_exists() -> None:
    shown = set(re.findall(r"(?:^|[\s;&|(])make ([a-z][\w-]*)", _readme_code(), flags=re.M))
    assert {"run", "test"} <= shown, "the README's two commands"
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    assert shown - targets == set(), f"not Makefile targets: {sorted(shown - targets)}"


def test_every_stocklake_command_the_readme_shows_exists() -> None:
    import typer

    from cli.app import app

    root = typer.main.get_command(app)
    shown = re.findall(
        r"(?:^|[\s/])stocklake ([a-z][\w-]*)(?: ([a-z][\w-]*))?", _readme_code(), flags=re.M
    )
    assert shown, "the README shows no stocklake command"
    for command, word in shown:
        assert command in root.commands, f"`stocklake {command}` is not a command"
        group = getattr(root.commands[command], "commands", None)
        if group and word:
            assert word in group, f"`stocklake {command} {word}` is not a command"


def test_the_benchmark_section_is_generated_from_the_results_files() -> None:
    """Nothing in the README's benchmark figures is typed: `bench/report.py --readme` wrote it
    from bench/results/*.json, and writing it again changes nothing."""
    from bench.report import rewrite_readme, section
    from bench.results import load_all

    text = (ROOT / "README.md").read_text()
    assert rewrite_readme(text, section(load_all())) == text
