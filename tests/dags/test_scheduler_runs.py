"""`make run`'s path: a backfill run by Airflow's own scheduler, on a private stack.

The stack (its own state folder and ports, Airflow's port too) runs
`python -m infra.pipeline_run` for one trading date, then the run is checked
through the REST API: a backfill run (not `airflow dags test`) that succeeded, and
task logs that read back through the endpoint the UI uses.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator

import pytest

from infra.airflow_api import AirflowApi, log_lines
from infra.airflow_env import admin_login
from infra.airflow_runs import SUMMARY_TASK
from infra.airflow_ui import ui_url
from infra.pipeline_run import BATCH, batch_logical_date
from stocklake.settings import load_settings
from tests.private_stack import ROOT, cli, free_port, stack_env

pytestmark = [pytest.mark.services, pytest.mark.spark]

TRADE_DATE = "2020-12-30"
LOGICAL_DATE = batch_logical_date(dt.date.fromisoformat(TRADE_DATE)).isoformat()


@pytest.fixture(scope="module")
def private_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    env = stack_env(tmp_path_factory.mktemp("scheduler") / "state", AIRFLOW_PORT=str(free_port()))
    yield env
    down = cli(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def pipeline(private_env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.pipeline_run", "--source", "csv"]
        # The model steps (a Spark full refresh of the bundled history, a training run)
        # would double this test's time: tests/models trains through the same calls,
        # and tests/infra/test_pipeline_models.py checks make run's plan for them.
        + ["--batch-dates", TRADE_DATE, "--no-realtime", "--no-report", "--no-models"],
        cwd=ROOT,
        env=private_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def api(private_env: dict[str, str], pipeline: subprocess.CompletedProcess) -> AirflowApi:
    assert pipeline.returncode == 0, pipeline.stdout[-6000:] + pipeline.stderr[-3000:]
    settings = load_settings(
        STATE_DIR=private_env["STATE_DIR"], AIRFLOW_PORT=private_env["AIRFLOW_PORT"]
    )
    user, password = admin_login(settings)
    assert password, "the api-server generates the admin password"
    return AirflowApi(ui_url(settings), user, password)


def the_run(api: AirflowApi) -> dict:
    (run,) = api.runs(BATCH, logical_date_gte=LOGICAL_DATE, logical_date_lte=LOGICAL_DATE)
    return run


def test_the_scheduler_ran_a_backfill_run(api: AirflowApi) -> None:
    run = the_run(api)
    assert run["run_type"] == "backfill", run
    assert run["triggered_by"] == "backfill", run
    assert run["state"] == "success", run
    assert run["data_interval_end"].startswith(f"{TRADE_DATE}T22:00:00")
    # A real duration (start to end of this run), not days since the logical date.
    assert 0 < run["duration"] < 600, run
    states = {t["task_id"]: t["state"] for t in api.task_instances(run)}
    assert set(states.values()) == {"success"}, states


def test_task_logs_read_back_through_the_ui_endpoint(api: AirflowApi) -> None:
    run = the_run(api)
    tasks = {t["task_id"]: t for t in api.task_instances(run)}
    summary = "\n".join(log_lines(api.task_log(run, tasks[SUMMARY_TASK])))
    assert f"{BATCH} completed:" in summary
    assert "landed=7" in summary  # the seven bundled symbols traded that day
    produce = "\n".join(log_lines(api.task_log(run, tasks["produce_bars"])))
    assert "Could not read served logs" not in produce
    assert len(produce.splitlines()) > 3, produce


def test_make_run_output(api: AirflowApi, pipeline: subprocess.CompletedProcess) -> None:
    out = pipeline.stdout
    assert "\x1b[" not in out, "no escape codes when stdout is not a terminal"
    assert f"{BATCH} {TRADE_DATE} (backfill__{TRADE_DATE}T22:00:00+00:00) {BATCH} completed:" in out
    assert "Airflow UI    http://127.0.0.1:" in out
    assert "login: admin / " in out
    # Paused again: the stack left up runs nothing on its own.
    assert api.call("GET", f"/dags/{BATCH}").json()["is_paused"] is True
