"""make run's model steps: the history it loads and the order of its commands."""

from __future__ import annotations

import datetime as dt

import typer

from cli.app import app
from infra.pipeline_models import history_commands


def test_the_history_stops_before_the_backfill_and_is_rebuilt_then_loaded() -> None:
    commands = history_commands(dt.date(2020, 12, 29))
    daily, minutes = commands[0], commands[1]
    assert daily[:5] == ["produce", "historical", "--if-new", "--source", "csv"]
    assert "--if-new" in minutes  # a second make run goes on past the history it sent
    assert daily[daily.index("--end") + 1] == "2020-12-29"  # exclusive: the DAGs add the 29th
    assert "--interval" in minutes and minutes[minutes.index("--interval") + 1] == "1m"
    steps = [" ".join(command[:2]) for command in commands[2:]]
    assert steps == [
        "land historical",
        "spark daily",
        "spark features",
        "load daily",
        "load features",
    ]
    assert all("--full-refresh" in command for command in commands if command[0] == "spark")


def test_every_history_command_is_a_stocklake_command() -> None:
    group = typer.main.get_command(app)
    for command in history_commands(dt.date(2020, 12, 29)):
        found = group
        for word in command[:2]:
            found = found.commands[word]  # KeyError: make run would call a missing command
        context = found.make_context(found.name, list(command[2:]))
        assert context.params is not None
