"""Every pipeline command records its run: one `pipeline_runs` row and one `stage_runs` row
(`loaders.governance.tracked_stage`), with the counts taken from the command's summary.

A command wraps its work in `command_run("spark daily")`, hands each summary to
`run.count(summary.as_dict())` and prints `run.run_id` with its summary. What a summary's
keys mean as stage counts is written once, in the core's `STAGE_SUMMARY_COUNTS`. A metadata
write that fails (the warehouse down) is a warning line from `tracked_stage`, never a
failed command.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from loaders import local_run_id
from loaders.governance import StageRecord, tracked_stage
from stocklake import governance
from stocklake.governance import RunKind
from stocklake.settings import get_settings

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def summary_counts(pipeline: str, summary: Mapping[str, Any]) -> dict[str, int]:
    """The stage counts a command's summary gives (pure; the table is the core's
    `STAGE_SUMMARY_COUNTS`, shared with the DAGs)."""
    return governance.summary_counts(governance.stage_kind(pipeline), summary)


@dataclass
class CommandRun:
    """The run a command is recording: its id, its stage row's counts, why it failed."""

    pipeline: str
    run_id: str
    stage: StageRecord | None = None
    error: str | None = None

    def count(self, summary: Mapping[str, Any]) -> None:
        """Add a summary's counts to the stage (a command with several summaries, e.g.
        `load features` (two tables) or `train stress` (two models), adds them up)."""
        if self.stage is None:
            return
        counts = self.stage.counts
        for name, value in summary_counts(self.pipeline, summary).items():
            setattr(counts, name, (getattr(counts, name) or 0) + value)

    def exit(self, code: int, error: BaseException | str) -> typer.Exit:
        """The command's failure (already printed): recorded with `error`'s first line."""
        text = str(error).strip()
        self.error = text.splitlines()[0] if text else type(error).__name__
        return typer.Exit(code)

    def line(self) -> str:
        """How the command's summary names its run."""
        return f"run {self.run_id} (stocklake runs show {self.run_id})"


class _Failed(Exception):
    """A command's non-zero exit, as `tracked_stage` records it (with its message)."""

    def __init__(self, message: str, stop: typer.Exit) -> None:
        super().__init__(message)
        self.stop = stop


@contextmanager
def command_run(pipeline: str, schema: str | None = None) -> Iterator[CommandRun]:
    """Record the command's run around the `with` block (run kind CLI, stage = pipeline).

    An exception in the block fails the run with its first line and propagates; a
    `typer.Exit` with a non-zero code fails it with the message given to `run.exit`.
    Metadata goes to the warehouse's `schema` (default: the configured one). Metadata not
    recorded is one warning line at the end (none on a usage error, exit 2: its own line
    names the cause).
    """
    run = CommandRun(pipeline=pipeline, run_id=local_run_id("cli"))
    code = 0
    with _metadata_warnings() as warnings:
        try:
            with _tracked(run, schema):
                yield run
        except typer.Exit as stop:
            code = stop.exit_code
            raise
        finally:
            if warnings and code != 2:
                err_console.print(
                    f"warning: {warnings[0]}", markup=False, highlight=False, soft_wrap=True
                )


@contextmanager
def _tracked(run: CommandRun, schema: str | None) -> Iterator[None]:
    """`tracked_stage` around the block; a non-zero `typer.Exit` fails the run first."""
    clean_exit: typer.Exit | None = None
    try:
        with tracked_stage(
            get_settings(),
            run_id=run.run_id,
            run_kind=RunKind.CLI,
            pipeline=run.pipeline,
            stage=run.pipeline,
            schema=schema,
        ) as stage:
            run.stage = stage
            try:
                yield
            except typer.Exit as stop:
                if stop.exit_code:
                    raise _Failed(run.error or f"exit status {stop.exit_code}", stop) from None
                clean_exit = stop
    except _Failed as failed:
        raise failed.stop from None
    if clean_exit is not None:
        raise clean_exit


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _metadata_warnings() -> Iterator[list[str]]:
    """`tracked_stage`'s warnings (metadata not recorded) while the command runs."""
    logger = logging.getLogger("loaders.governance")
    lines: list[str] = []
    handler = _Collect(lines)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # shown once, by command_run, not by the command's logging too
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class RecordedCommands:
    """`app` as a module's `register(app)` sees it: each command it adds records its run.

    For commands that do not record their own (`cli/check.py`'s `check` and `drift`): the
    command is the pipeline and the stage; when it takes a `--run-id` and none was given,
    its results (quality_results, drift_alerts rows) carry the recorded run's id, so
    `stocklake runs show` finds them. `failures` names what a command's exit 1 means.
    """

    def __init__(self, app: typer.Typer, failures: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.failures = dict(failures or {})

    def command(self, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        register = self.app.command(name, **options)

        def decorator(function: Callable[..., Any]) -> Any:
            @functools.wraps(function)
            def recorded(*args: Any, **kwargs: Any) -> Any:
                with command_run(name, kwargs.get("schema")) as run:
                    if "run_id" in kwargs and kwargs["run_id"] is None:
                        kwargs["run_id"] = run.run_id
                    try:
                        result = function(*args, **kwargs)
                    except typer.Exit as stop:
                        if stop.exit_code:
                            raise run.exit(stop.exit_code, self._failure(name, stop)) from None
                        raise
                console.print(run.line(), markup=False, highlight=False, soft_wrap=True)
                return result

            return register(recorded)

        return decorator

    def _failure(self, name: str, stop: typer.Exit) -> str:
        """What the run failed with: the command's exit 1 as `failures` says, else the code."""
        if stop.exit_code == 1 and name in self.failures:
            return self.failures[name]
        if stop.exit_code == 2:
            return f"`stocklake {name}` exited 2: a bad argument or nothing to work on"
        return f"`stocklake {name}` exited {stop.exit_code}"
