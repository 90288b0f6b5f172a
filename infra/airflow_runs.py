"""Watching DAG runs through Airflow's REST API, as `make run` does: unpause while they
go and pause again when they are done, skip the runs that unpausing queues, print each
change of progress, and read back a run's summary or its failed task's log."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from infra.airflow_api import AirflowApi, log_lines

SUMMARY_TASK = "completion_summary"
FINISHED_RUN = ("success", "failed")
FINISHED_TASK = ("success", "failed", "skipped", "upstream_failed", "removed")
POLL_S = 2.0
WAIT_TIMEOUT_S = 1800.0
LOG_TAIL_LINES = 40


class PipelineError(Exception):
    """A step failed; the message says which and where to look."""


@dataclass
class Watched:
    """One run make run waits for, found by its DAG and logical date."""

    dag_id: str
    label: str
    logical_date: dt.datetime
    run: dict[str, Any] = field(default_factory=dict)
    progress: str = ""

    @property
    def finished(self) -> bool:
        return self.run.get("state") in FINISHED_RUN


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    # Bold only on a terminal: `make run > log` gets no escape codes.
    say(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}")


@contextmanager
def unpaused(api: AirflowApi, dag_ids: tuple[str, ...]) -> Iterator[list[str]]:
    """Unpause the DAGs (Airflow runs nothing of a paused DAG); pause them again after."""
    was_paused = [d for d in dag_ids if api.is_paused(d)]
    for dag_id in was_paused:
        api.set_paused(dag_id, False)
    if was_paused:
        say(f"unpaused {', '.join(was_paused)} (paused again at the end)")
    try:
        yield was_paused
    finally:
        for dag_id in was_paused:
            api.set_paused(dag_id, True)
        skip_unrequested_runs(api, was_paused)
        if was_paused:
            say(f"paused {', '.join(was_paused)} again: nothing runs on its own until unpaused")


SKIPPED_NOTE = (
    "Skipped by make run: unpausing queued this run of the latest interval (catchup is "
    "off); make run pauses the DAG again when its own runs are done."
)


def skip_unrequested_runs(api: AirflowApi, dag_ids: list[str]) -> None:
    """Mark scheduled runs that unpausing queued, and that have not started, skipped.

    Unpausing makes the scheduler run each DAG's latest interval. The batch one starts
    at once and skips itself (the bundled CSV has no bars for today); the realtime one
    waits behind make run's run and would add today's ticks. Marked success before it
    starts, its tasks are skipped, and the run stays the latest scheduled one, so the
    scheduler does not queue that interval again (a deleted run would be re-queued).
    """
    for dag_id in dag_ids:
        for run in api.runs(dag_id, run_type="scheduled", state="queued"):
            if not run["start_date"]:
                body = {"state": "success", "note": SKIPPED_NOTE}
                api.call("PATCH", api.run_path(run), json=body)
                say(f"skipped {run['dag_run_id']} of {dag_id}: queued by unpausing, not started")


def wait_for_other_runs(api: AirflowApi, dag_ids: list[str], timeout: float = 300) -> None:
    """Let runs the scheduler started on its own finish: a paused DAG's run would stall."""
    deadline = time.monotonic() + timeout
    for dag_id in dag_ids:
        said: set[str] = set()
        while running := [r["dag_run_id"] for r in api.runs(dag_id, state="running")]:
            if time.monotonic() > deadline:
                return
            for run_id in set(running) - said:
                say(f"waiting for {run_id} of {dag_id}, which the scheduler started")
            said.update(running)
            time.sleep(POLL_S)


def refresh(api: AirflowApi, watched: Watched) -> None:
    at = watched.logical_date.isoformat()
    runs = api.runs(watched.dag_id, logical_date_gte=at, logical_date_lte=at)
    watched.run = runs[0] if runs else {}


def progress_of(api: AirflowApi, watched: Watched) -> str:
    """One line: the run's state, tasks done and what runs now."""
    run = watched.run
    if not run:
        return "not created yet"
    state = run["state"]
    if state != "running":
        duration = f" in {run['duration']:.0f} s" if run.get("duration") else ""
        return f"{state}{duration}  ({run['dag_run_id']})"
    tasks = api.task_instances(run)
    done = sum(t["state"] in FINISHED_TASK for t in tasks)
    active = [
        f"{t['task_id']} (retry)" if t["state"] == "up_for_retry" else t["task_id"]
        for t in tasks
        if t["state"] in ("queued", "running", "up_for_retry", "deferred")
    ]
    now = f"; now {', '.join(active)}" if active else ""
    return f"running, {done}/{len(tasks)} tasks done{now}"


def wait_for_runs(api: AirflowApi, watched: list[Watched], unpaused_dags: list[str]) -> None:
    """Poll until every run finished, printing each change of progress."""
    started = time.monotonic()
    while True:
        for w in watched:
            refresh(api, w)
            progress = progress_of(api, w)
            if progress != w.progress:
                w.progress = progress
                say(f"[{time.monotonic() - started:5.0f} s] {w.label}: {progress}")
        skip_unrequested_runs(api, unpaused_dags)
        pause_when_done(api, watched, unpaused_dags)
        if all(w.finished for w in watched):
            wait_for_other_runs(api, unpaused_dags)
            return
        if time.monotonic() - started > WAIT_TIMEOUT_S:
            unfinished = ", ".join(w.label for w in watched if not w.finished)
            raise PipelineError(f"still not finished after {WAIT_TIMEOUT_S:.0f} s: {unfinished}")
        time.sleep(POLL_S)


def pause_when_done(api: AirflowApi, watched: list[Watched], unpaused_dags: list[str]) -> None:
    """Pause a DAG make run unpaused as soon as its own runs are done, so the scheduler
    does not start one of its scheduled runs meanwhile (a realtime run of today would
    move the stream's watermark past the simulated session)."""
    for dag_id in unpaused_dags:
        mine = [w for w in watched if w.dag_id == dag_id]
        if mine and all(w.finished for w in mine) and not api.is_paused(dag_id):
            api.set_paused(dag_id, True)


def report_failure(api: AirflowApi, watched: Watched) -> str:
    """Name the failed run and task, print the tail of that task's log; return a line."""
    run = watched.run
    tasks = api.task_instances(run)
    failed = [t for t in tasks if t["state"] == "failed"] or [
        t for t in tasks if t["state"] == "upstream_failed"
    ]
    if not failed:
        return f"{watched.label} ({run['dag_run_id']}) failed; see its grid in the UI"
    task = failed[0]
    say(
        f"\n{watched.label} FAILED: run {run['dag_run_id']}, task {task['task_id']} "
        f"(try {task['try_number']}); the last lines of its log:"
    )
    for line in log_lines(api.task_log(run, task))[-LOG_TAIL_LINES:]:
        say(f"  {line}")
    return f"{watched.label}: task {task['task_id']} failed in run {run['dag_run_id']}"


def summary_block(api: AirflowApi, watched: Watched) -> str:
    """The run's completion summary, as the summary task logged it."""
    tasks = {t["task_id"]: t for t in api.task_instances(watched.run)}
    task = tasks.get(SUMMARY_TASK)
    if not task or task["state"] != "success":
        skipped = [t for t, ti in tasks.items() if ti["state"] == "skipped"]
        return f"{watched.label}: no summary (skipped: {', '.join(skipped) or 'none'})"
    blocks = [
        str(entry["event"])
        for entry in api.task_log(watched.run, task)
        if str(entry.get("event", "")).startswith(f"{watched.dag_id} completed:")
    ]
    if not blocks:
        return f"{watched.label}: the summary task's log has no summary block"
    return f"{watched.label} ({watched.run['dag_run_id']}) {blocks[-1]}"
