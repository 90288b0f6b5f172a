"""`make run`: the whole pipeline through Airflow's own scheduler, then what it produced.

1. `stocklake up`, then Airflow (api-server, scheduler, dag-processor, triggerer;
   infra/airflow_ui.py). Task logs are files under $AIRFLOW_HOME/logs, which the
   api-server reads for the UI (no log server is started).
2. Through the REST API (v2, the generated admin login): a backfill of
   stock_market_batch over the trading dates, one triggered stock_market_realtime
   run on a simulated session; both DAGs unpaused while make run runs (the
   latest-interval runs that unpausing queues are marked skipped before they start).
3. Wait for the runs, printing progress. A failed run is named with its failed
   task and the tail of that task's log (exit 1); else each run's summary block.
4. The DAGs paused again (when they were paused), `stocklake report` (ending with the
   latest checked run's checks and drift alerts).
5. The models (infra/pipeline_models.py, skipped with --no-models): the bundled history
   loaded first (before step 2), then one stock_market_training run, then the prediction
   API; then the dashboard, this make run's runs (`stocklake runs --since`: stages,
   checks passed/warned/failed, drift alerts), the timings and where to look: Airflow UI,
   lake console, dashboard, model API, warehouse.

Re-runs: the backfill reprocesses dates that already ran (Airflow clears those runs
and runs them again, keeping the earlier tries); the realtime run is deleted and
triggered anew. The stages deduplicate, so the tables end up the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from infra.airflow_api import AirflowApi, AirflowApiError, wait_for_dags
from infra.airflow_env import admin_login, airflow_home
from infra.airflow_runs import (
    FINISHED_RUN,
    POLL_S,
    WAIT_TIMEOUT_S,
    PipelineError,
    Watched,
    report_failure,
    say,
    step,
    summary_block,
    unpaused,
    wait_for_runs,
)
from infra.airflow_ui import start as start_airflow
from infra.airflow_ui import ui_url
from infra.dashboard_server import server_for
from infra.dashboard_server import start as start_dashboard_server
from infra.local_stack import StackError
from infra.pipeline_models import TRAINING, load_history, restart_api, trigger_training
from infra.service import http_ok
from stocklake.schemas import Clock, HistoricalSource
from stocklake.settings import PROJECT_ROOT, Settings, SettingsError, get_settings

BATCH = "stock_market_batch"
REALTIME = "stock_market_realtime"
# The realtime run's data interval: the session's last 15 minutes (its end picks the day).
REALTIME_INTERVAL_START = dt.time(20, 45, tzinfo=dt.UTC)
REALTIME_INTERVAL = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Plan:
    source: str
    batch_dates: list[dt.date]
    realtime_date: dt.date | None
    realtime_seconds: int
    models: bool = True

    @property
    def realtime_conf(self) -> dict[str, Any]:
        return {
            "duration_seconds": self.realtime_seconds,
            "rate": 200,
            "clock": Clock.ACCELERATED.value,
        }


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def batch_logical_date(day: dt.date) -> dt.datetime:
    """The run for trading date `day` covers [previous weekday 22:00, `day` 22:00) UTC."""
    if day.weekday() >= 5:
        raise PipelineError(f"{day} is a {day:%A}: {BATCH} runs Monday to Friday only")
    previous = day - dt.timedelta(days=3 if day.weekday() == 0 else 1)
    return dt.datetime.combine(previous, dt.time(22), tzinfo=dt.UTC)


def batch_runs(days: list[dt.date]) -> list[Watched]:
    """One run per weekday from the first to the last date (the backfill's range)."""
    first, last = min(days), max(days)
    if dt.datetime.combine(last, dt.time(22), tzinfo=dt.UTC) > dt.datetime.now(dt.UTC):
        raise PipelineError(f"the {BATCH} run for {last} can only start after {last} 22:00 UTC")
    span = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return [
        Watched(BATCH, f"{BATCH} {day}", batch_logical_date(day))
        for day in span
        if day.weekday() < 5
    ]


def remove_runs_of_other_intervals(api: AirflowApi, watched: list[Watched]) -> None:
    """Delete runs at these logical dates that cover another interval.

    `airflow dags test D` (how make run worked before) made a run at logical date D
    22:00 covering trading date D, where the scheduler's run for D+1 belongs; a
    backfill would re-run it as it is, for the wrong day.
    """
    wanted = {w.logical_date for w in watched}
    runs = api.runs(
        BATCH,
        logical_date_gte=min(wanted).isoformat(),
        logical_date_lte=max(wanted).isoformat(),
    )
    for run in runs:
        logical = parse_time(run["logical_date"])
        if logical in wanted and parse_time(run["data_interval_start"]) != logical:
            api.call("DELETE", api.run_path(run))
            say(f"removed {run['dag_run_id']}: it covers another day than the backfill's run")


def create_backfill(api: AirflowApi, watched: list[Watched], source: str) -> None:
    """Backfill the range; dates that already ran are cleared and run again."""
    body = {
        "dag_id": BATCH,
        "from_date": watched[0].logical_date.isoformat(),
        "to_date": watched[-1].logical_date.isoformat(),
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
        "dag_run_conf": {"source": source},
        "run_on_latest_version": True,
    }
    wait_for_unfinished_backfills(api)
    backfill = api.call("POST", "/backfills", json=body).json()
    say(
        f"backfill {backfill['id']} of {BATCH}: logical dates {body['from_date']} .. "
        f"{body['to_date']}, one run at a time, conf {body['dag_run_conf']}"
    )


def wait_for_unfinished_backfills(api: AirflowApi, timeout: float = WAIT_TIMEOUT_S) -> None:
    """Airflow runs one backfill per DAG at a time: let an earlier one finish first."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        backfills = api.call("GET", "/backfills", params={"dag_id": BATCH}).json()["backfills"]
        active = [b["id"] for b in backfills if not b["completed_at"]]
        if not active:
            return
        if time.monotonic() > deadline:
            raise PipelineError(f"backfill {active} of {BATCH} still unfinished; see the UI")
        if not said:
            # The scheduler marks a backfill complete a moment after its last run.
            say(f"waiting for the earlier backfill {active} of {BATCH} to be marked complete")
            said = True
        time.sleep(POLL_S)


def trigger_realtime(api: AirflowApi, plan: Plan) -> Watched:
    """One run on the simulated session; an earlier run of the same interval is replaced."""
    assert plan.realtime_date is not None
    start = dt.datetime.combine(plan.realtime_date, REALTIME_INTERVAL_START)
    end = start + REALTIME_INTERVAL
    watched = Watched(REALTIME, f"{REALTIME} {plan.realtime_date}", start)
    at = start.isoformat()
    for run in api.runs(REALTIME, logical_date_gte=at, logical_date_lte=at):
        if run["state"] not in FINISHED_RUN:
            say(f"{run['dag_run_id']} of {REALTIME} is still {run['state']}: waiting for it")
            return watched
        api.call("DELETE", api.run_path(run))
        say(f"removed the earlier {run['dag_run_id']} of {REALTIME}, to run it again")
    body = {
        # A new run id each time: a re-used one would append to the earlier run's log files.
        "dag_run_id": f"make_run__{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "logical_date": start.isoformat(),
        "data_interval_start": start.isoformat(),
        "data_interval_end": end.isoformat(),
        # When a scheduled run of this interval would start; it also puts this run ahead
        # of the latest-interval run that unpausing queues.
        "run_after": end.isoformat(),
        "conf": plan.realtime_conf,
    }
    run = api.call("POST", f"/dags/{REALTIME}/dagRuns", json=body).json()
    say(f"triggered {run['dag_run_id']} of {REALTIME}: interval {start} .. {end}")
    return watched


def run_command(args: list[str]) -> None:
    """A `stocklake` command, its output shown as it comes."""
    result = subprocess.run([sys.executable, "-m", "cli", *args], cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise PipelineError(f"stocklake {' '.join(args)} failed (exit {result.returncode})")


class Timings:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    @contextmanager
    def timed(self, label: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.rows.append((label, time.monotonic() - started))

    def show(self) -> None:
        for label, seconds in self.rows:
            say(f"{label:<52} {seconds:5.0f} s")


def start_services(settings: Settings, timings: Timings) -> AirflowApi:
    step("Starting the local stack")
    with timings.timed("stocklake up"):
        run_command(["up"])
    step("Starting Airflow (api-server, scheduler, dag-processor, triggerer)")
    with timings.timed("Airflow start"):
        url, user, password = start_airflow(settings)
        if password is None:
            raise PipelineError(f"no generated Airflow password yet; see {settings.state_path}")
        api = AirflowApi(url, user, password)
        wait_for_dags(api, (BATCH, REALTIME))
    say(f"Airflow is up at {url}; task logs in {airflow_home(settings) / 'logs'}")
    return api


def run_pipeline(api: AirflowApi, plan: Plan, timings: Timings) -> list[Watched]:
    """Backfill, trigger, wait; return the runs (finished)."""
    step(f"Running the DAGs through the scheduler (source={plan.source})")
    watched = batch_runs(plan.batch_dates)
    remove_runs_of_other_intervals(api, watched)
    create_backfill(api, watched, plan.source)
    dag_ids = (BATCH,)
    if plan.realtime_date:
        # Triggered while still paused, so it is queued before anything unpausing queues.
        watched.append(trigger_realtime(api, plan))
        dag_ids = (BATCH, REALTIME)
    wall = timings.timed("all runs, through the scheduler (wall)")
    with wall, unpaused(api, dag_ids) as unpaused_dags:
        wait_for_runs(api, watched, unpaused_dags)
    for w in watched:
        timings.rows.append((f"  {w.label} (run duration)", w.run.get("duration") or 0.0))
    return watched


def run_training(api: AirflowApi, timings: Timings) -> Watched:
    """One stock_market_training run through the scheduler, after the data is loaded."""
    step("Training the models (stock_market_training)")
    run_id, logical_date = trigger_training(api)
    say(f"triggered {run_id} of {TRAINING}")
    watched = Watched(TRAINING, TRAINING, logical_date)
    with timings.timed("training run (wall)"), unpaused(api, (TRAINING,)) as unpaused_dags:
        wait_for_runs(api, [watched], unpaused_dags)
    return watched


def show_results(api: AirflowApi, watched: list[Watched]) -> list[str]:
    """Each run's summary block, or for a failed run its failed task's log tail."""
    step("Each run's summary (from its completion_summary task log)")
    failures = [report_failure(api, w) for w in watched if w.run["state"] != "success"]
    for w in watched:
        if w.run["state"] == "success":
            say(summary_block(api, w))
    return failures


def lake_console_login(settings: Settings) -> tuple[str, str] | None:
    from infra.s3_server import S3Server, console_login

    server = S3Server(settings)
    if not server.console_up():
        return None
    if settings.s3_server == "seaweedfs":
        return console_login(settings)
    return settings.s3_access_key, settings.s3_secret_key  # MinIO's console: the key pair


def start_dashboard(settings: Settings) -> None:
    """The dashboard in the background (left running, like Airflow), unless it already is."""
    server = server_for(settings)
    if server.running_pid() is None:
        step("The dashboard")
        start_dashboard_server(server)


def show_access(settings: Settings) -> None:
    """Where to look, with the logins; everything stays up."""
    user, password = admin_login(settings)
    say("\nThe stack and Airflow are still running:")
    say(f"  Airflow UI    {ui_url(settings)}  login: {user} / {password}")
    console = lake_console_login(settings)
    if console:
        say(f"  lake console  {settings.lake_console_url}  login: {console[0]} / {console[1]}")
    say(f"  lake (S3)     {settings.s3_endpoint_url}  (browse: .venv/bin/stocklake ls)")
    dashboard = server_for(settings)
    if dashboard.running_pid() is not None:
        say(f"  dashboard     {dashboard.url}  (market overview, symbol, real time, pipeline)")
    api = f"http://{settings.bind_host}:{settings.models_port}"
    if http_ok(f"{api}/health"):
        say(f"  model API     {api}/docs  (GET /health, GET /models, POST /predict), e.g.")
        say(
            f"                curl -s -X POST {api}/predict -H 'content-type: application/json' "
            """-d '{"symbol": "AAPL", "date": "2020-12-30"}'"""
        )
    say(
        '  warehouse     .venv/bin/stocklake sql "SELECT ..."   (read-only; or psql -h '
        f"{settings.postgres_host} -p {settings.postgres_port} -U "
        f"{settings.postgres_readonly_user} {settings.warehouse_db}, password in "
        f"{settings.postgres_passwords_file})"
    )
    say("Stop everything with: make down")


def show_runs(since: dt.datetime) -> None:
    """This make run's pipeline runs (CLI commands and DAG runs) with their stages, checks
    (passed, warned, failed) and drift alerts: `stocklake runs --since`. Informational:
    a warehouse that cannot say is a line, not a failed make run."""
    step("The runs, their checks and drift alerts (stocklake runs; one: stocklake runs show ID)")
    try:
        run_command(["runs", "--since", f"{since:%Y-%m-%dT%H:%M:%S%z}", "--limit", "100"])
    except PipelineError as error:
        say(f"(not shown: {error})")


def yfinance_dates(today: dt.date) -> list[dt.date]:
    """Yahoo serves recent bars only: the last three weekdays before today."""
    days: list[dt.date] = []
    day = today
    while len(days) < 3:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return sorted(days)


def parse_plan(argv: list[str] | None) -> tuple[Plan, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m infra.pipeline_run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = os.environ.get
    parser.add_argument(
        "--source", default=env("SOURCE", "csv"), help="csv, yfinance or synthetic (SOURCE)"
    )
    parser.add_argument(
        "--batch-dates",
        default=env("BATCH_DATES"),
        help="trading dates, first to last: every weekday between gets a run (BATCH_DATES)",
    )
    parser.add_argument(
        "--realtime-date",
        default=env("REALTIME_DATE", "2020-12-31"),
        help="the simulated session (REALTIME_DATE)",
    )
    parser.add_argument(
        "--realtime-seconds",
        type=int,
        default=int(env("REALTIME_SECONDS", "30")),
        help="wall seconds of simulated ticks (REALTIME_SECONDS)",
    )
    parser.add_argument("--no-realtime", action="store_true", help="the batch backfill only")
    parser.add_argument("--no-report", action="store_true", help="skip `stocklake report`")
    parser.add_argument(
        "--no-models",
        action="store_true",
        help="skip the bundled history, the training run and the model API",
    )
    args = parser.parse_args(argv)
    if args.batch_dates:
        dates = [dt.date.fromisoformat(d) for d in args.batch_dates.replace(",", " ").split()]
    elif args.source == HistoricalSource.YFINANCE:
        dates = yfinance_dates(dt.date.today())
    else:
        dates = [dt.date(2020, 12, 29), dt.date(2020, 12, 30), dt.date(2020, 12, 31)]
    realtime = None if args.no_realtime else dt.date.fromisoformat(args.realtime_date)
    plan = Plan(args.source, dates, realtime, args.realtime_seconds, models=not args.no_models)
    return plan, args.no_report


def main(argv: list[str] | None = None) -> int:
    plan, no_report = parse_plan(argv)
    settings = get_settings()
    timings = Timings()
    began = dt.datetime.now(dt.UTC)
    try:
        api = start_services(settings, timings)
        if plan.models:
            step("The history the models learn from (the bundled files)")
            with timings.timed("history: produce, land, Spark full refresh, load"):
                load_history(plan.batch_dates[0], run_command)
        watched = run_pipeline(api, plan, timings)
        if plan.models and not any(w.run.get("state") == "failed" for w in watched):
            watched.append(run_training(api, timings))
        failures = show_results(api, watched)
    except (PipelineError, AirflowApiError, StackError, SettingsError, httpx.HTTPError) as error:
        say(f"\nmake run failed: {error}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted: the DAGs are paused again, so unfinished runs wait (see the UI)")
        return 130
    if failures:
        say("\nmake run failed:\n  " + "\n  ".join(failures))
        show_access(settings)
        return 1
    if not no_report:
        step("What the pipeline produced")
        with timings.timed("report"):
            run_command(["report"])
    try:
        with timings.timed("dashboard"):
            start_dashboard(settings)
        if plan.models:
            step("The prediction API")
            with timings.timed("model API"):
                restart_api(run_command)
    except (StackError, PipelineError) as error:
        say(f"\nmake run failed: {error}")
        return 1
    show_runs(began)
    step("Timings")
    timings.show()
    show_access(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
