"""What every command's --help promises, across the whole command line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from cli.app import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _with_end() -> list[tuple[tuple[str, ...], Any]]:
    return [
        (path, param)
        for path, command in _commands(typer.main.get_command(app))
        for param in command.params
        if "--end" in getattr(param, "opts", ())
    ]


def test_every_end_option_says_it_is_exclusive() -> None:
    found = _with_end()
    assert {" ".join(path) for path, _ in found} >= {
        "produce historical",
        "spark daily",
        "load daily",
        "load realtime",
    }
    for path, option in found:
        assert "exclusive" in (option.help or "").lower(), " ".join(path)
        help_text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "EXCLUSIVE" in help_text, " ".join(path)
