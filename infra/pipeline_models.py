"""`make run`'s model steps: the history the models learn from, one training run through
Airflow, and the prediction API left running.

1. The history: the bundled real files up to the day before the backfill's first date
   (so the DAG runs add their own dates), produced, landed, and rebuilt by Spark
   (`--full-refresh`: daily metrics, then the rolling features), then loaded.
2. One triggered `stock_market_training` run (direction model and stress indexes)
   through the scheduler, like the other DAGs: unpaused while it runs.
3. `stocklake serve --background` with the newest version (a running API is restarted
   so that it serves the version just trained).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from infra.airflow_api import AirflowApi

TRAINING = "stock_market_training"
# The history comes from the bundled files (daily bars from 2019-01-02, one week of
# minutes in May 2019), whatever SOURCE the DAG runs use.
HISTORY_START = "2019-01-01"
HISTORY_COMMANDS: tuple[tuple[str, ...], ...] = (
    # --if-new: a second `make run` finds the same files already sent and goes on.
    ("produce", "historical", "--if-new", "--source", "csv")
    + ("--start", "{start}", "--end", "{end}"),
    ("produce", "historical", "--if-new", "--source", "csv", "--interval", "1m"),
    ("land", "historical", "--until-idle", "5"),
    ("spark", "daily", "--full-refresh"),
    ("spark", "features", "--full-refresh"),
    ("load", "daily"),
    ("load", "features"),
)


def history_commands(first_batch_date: dt.date) -> list[list[str]]:
    """The `stocklake` commands that load the history before `first_batch_date`."""
    dates = {"start": HISTORY_START, "end": first_batch_date.isoformat()}
    return [[part.format(**dates) for part in command] for command in HISTORY_COMMANDS]


def load_history(first_batch_date: dt.date, run_command: Callable[[list[str]], None]) -> None:
    for command in history_commands(first_batch_date):
        run_command(command)


def trigger_training(api: AirflowApi) -> tuple[str, dt.datetime]:
    """One manual run of the training DAG now: (its run id, its logical date)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    body = {
        "dag_run_id": f"make_run__{now:%Y-%m-%dT%H:%M:%SZ}",
        "logical_date": now.isoformat(),
        "conf": {},
    }
    run = api.call("POST", f"/dags/{TRAINING}/dagRuns", json=body).json()
    return run["dag_run_id"], now


def restart_api(run_command: Callable[[list[str]], None]) -> None:
    """Serve the newest model version: stop a running API first (it keeps the version it
    loaded at start)."""
    run_command(["serve", "--stop"])
    run_command(["serve", "--background"])
