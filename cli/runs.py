"""`stocklake runs` and `stocklake runs show RUN_ID`: the pipeline runs the warehouse records
(`pipeline_runs`, `stage_runs`), with their checks (`quality_results`) and drift alerts
(`drift_alerts`). `stocklake report` ends with `report_checks`: the latest checked run's
checks and drift alerts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cli.figures import NOTHING
from loaders import SchemaNotFoundError, connect_warehouse
from loaders.governance import (
    governance_warehouse,
    latest_runs,
    quality_summary,
    run_details,
)
from loaders.tables import DRIFT_ALERTS, QUALITY_RESULTS, STAGE_RUNS
from loaders.warehouse import Warehouse
from stocklake.governance import CheckStatus
from stocklake.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

SCHEMA_HELP = "PostgreSQL schema (default WAREHOUSE_SCHEMA) or Snowflake schema (SNOWFLAKE_SCHEMA)."
SHOWN_PROBLEMS = 40  # failed/warned checks and drift alerts printed at most per table

runs_app = typer.Typer(
    help="The pipeline runs the warehouse records: `stocklake runs` lists the latest, "
    "`stocklake runs show RUN_ID` shows one with its stages, checks and drift alerts.",
    invoke_without_command=True,
)


def _fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _warehouse(settings: Settings, schema: str | None) -> Iterator[Warehouse]:
    """The governance tables' warehouse; any failure of it is one line: a missing schema
    exit 2 (a bad argument), anything else (unreachable, a query refused) exit 1."""
    try:
        with governance_warehouse(settings, schema) as warehouse:
            yield warehouse
    except (typer.Exit, typer.BadParameter):
        raise
    except SchemaNotFoundError as error:
        raise _fail(str(error), 2) from None
    except Exception as error:  # the drivers raise their own errors
        first = first_line(error) or type(error).__name__
        raise _fail(f"the warehouse ({settings.warehouse_kind}): {first}", 1) from None


# ------------------------------------------------------------------ figures (pure)


def when(value: Any) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM:SS` UTC, or `-`."""
    if not isinstance(value, datetime):
        return NOTHING if value is None else str(value)
    moment = value.astimezone(UTC) if value.tzinfo else value
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def run_seconds(run: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """How long a run took (or has been running)."""
    started, finished = run.get("started_at"), run.get("finished_at")
    if not isinstance(started, datetime):
        return None
    end = finished if isinstance(finished, datetime) else (now or datetime.now(UTC))
    return max(0.0, (end - started).total_seconds())


def first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def count_text(value: Any) -> str:
    return NOTHING if value is None else f"{int(value):,}"


# ------------------------------------------------------------------ reading


def _in_list(values: Sequence[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def _grouped(warehouse: Warehouse, statement: str) -> list[tuple[Any, ...]]:
    return warehouse.query(statement, read_only=True)[1]


def run_figures(warehouse: Warehouse, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per run: its stage count, its checks by status and its drift alerts (3 queries)."""
    figures: dict[str, dict[str, Any]] = {
        run_id: {"stages": 0, "checks": quality_summary([]), "drift_alerts": 0}
        for run_id in run_ids
    }
    if not run_ids:
        return figures
    where = f"WHERE run_id IN ({_in_list(run_ids)}) GROUP BY run_id"
    for run_id, count in _grouped(
        warehouse, f"SELECT run_id, COUNT(*) FROM {STAGE_RUNS.name} {where}"
    ):
        figures[run_id]["stages"] = int(count)
    for run_id, status, count in _grouped(
        warehouse, f"SELECT run_id, status, COUNT(*) FROM {QUALITY_RESULTS.name} {where}, status"
    ):
        figures[run_id]["checks"][status] = int(count)
    for run_id, count in _grouped(
        warehouse, f"SELECT run_id, COUNT(*) FROM {DRIFT_ALERTS.name} {where}"
    ):
        figures[run_id]["drift_alerts"] = int(count)
    return figures


def listed_runs(
    warehouse: Warehouse, limit: int, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The latest runs (newest first), those started since `since` if given, with their
    stage count, checks by status and drift alerts."""
    runs = latest_runs(warehouse, limit)
    if since is not None:
        runs = [run for run in runs if run["started_at"] and run["started_at"] >= since]
    figures = run_figures(warehouse, [run["run_id"] for run in runs])
    return [{**run, "seconds": run_seconds(run), **figures[run["run_id"]]} for run in runs]


def latest_checked_run(warehouse: Warehouse) -> str | None:
    """The run whose checks or drift alerts were stored last (None: no run has any)."""
    newest = []
    for table, column in ((QUALITY_RESULTS, "checked_at"), (DRIFT_ALERTS, "created_at")):
        found = warehouse.read_rows(table, {}, order_by=(column,), limit=1)
        if found and found[0][column] is not None:
            newest.append((found[0][column], found[0]["run_id"]))
    return max(newest)[1] if newest else None


# ------------------------------------------------------------------ tables


def runs_table(runs: Sequence[Mapping[str, Any]], title: str) -> Table:
    """One line per run; the run id whole (it is what `stocklake runs show` takes)."""
    table = Table(title=title)
    widest = max((len(run["run_id"]) for run in runs), default=6)
    table.add_column("run id", min_width=widest, no_wrap=True)
    table.add_column("pipeline", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("status", min_width=9, no_wrap=True)
    table.add_column("stages", justify="right", no_wrap=True)
    table.add_column("checks p/w/f", justify="right", no_wrap=True)
    table.add_column("drift", justify="right", no_wrap=True)
    table.add_column("error (first line)", max_width=60)  # the one column that gives way
    for run in runs:
        seconds = run.get("seconds")
        table.add_row(
            run["run_id"],
            run["pipeline"],
            when(run["started_at"]),
            NOTHING if seconds is None else f"{seconds:,.1f}",
            _status(run["status"]),
            str(run.get("stages", NOTHING)),
            checks_cell(run.get("checks")),
            str(run.get("drift_alerts", NOTHING)),
            Text(first_line(run.get("error")), no_wrap=True, overflow="ellipsis"),
        )
    return table


def checks_cell(counts: Mapping[str, int] | None) -> str:
    """`12/1/0` (passed/warned/failed), or `-` when the run has no checks."""
    if not counts or not any(counts.values()):
        return NOTHING
    return "/".join(str(counts.get(status.value, 0)) for status in CheckStatus)


def _status(status: str) -> Text:
    style = {"succeeded": "green", "failed": "red", "running": "yellow"}.get(status, "")
    return Text(status, style=style)


COUNT_COLUMNS = (
    ("in", "records_in"),
    ("out", "records_out"),
    ("quarantined", "records_quarantined"),
    ("duplicates", "duplicates_dropped"),
    ("objects", "objects_written"),
    ("bytes", "bytes_written"),
)


def stages_table(stages: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="stages")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    for name, _ in COUNT_COLUMNS:
        table.add_column(name, justify="right")
    table.add_column("error")
    for stage in stages:
        seconds = stage.get("seconds")
        table.add_row(
            stage["stage"],
            _status(stage["status"]),
            NOTHING if seconds is None else f"{seconds:,.2f}",
            *(count_text(stage.get(column)) for _, column in COUNT_COLUMNS),
            Text(first_line(stage.get("error"))),
        )
    return table


def problems_table(quality: Sequence[Mapping[str, Any]]) -> Table | None:
    """The failed and warned checks (failed first), or None when every check passed."""
    order = {CheckStatus.FAILED.value: 0, CheckStatus.WARNED.value: 1}
    problems = sorted(
        (row for row in quality if row["status"] in order),
        key=lambda row: (order[row["status"]], row["dataset"], row["partition_name"]),
    )
    if not problems:
        return None
    table = Table(title="failed and warned checks", caption=_more(len(problems)))
    for name in ("status", "dataset", "partition", "check", "observed", "expected", "detail"):
        table.add_column(name)
    for row in problems[:SHOWN_PROBLEMS]:
        table.add_row(
            _status(row["status"]),
            row["dataset"],
            Text(row["partition_name"]),
            row["check_name"],
            Text(str(row.get("observed") or "")),
            Text(str(row.get("expected") or "")),
            Text(first_line(row.get("detail"))),
        )
    return table


def drift_table(alerts: Sequence[Mapping[str, Any]]) -> Table | None:
    if not alerts:
        return None
    ranked = sorted(alerts, key=lambda row: -abs(row.get("zscore") or 0.0))
    table = Table(title="drift alerts (largest |z| first)", caption=_more(len(ranked)))
    for name in ("dataset", "symbol", "date", "metric"):
        table.add_column(name)
    for name in ("observed", "mean", "stddev", "z", "threshold"):
        table.add_column(name, justify="right")
    for row in ranked[:SHOWN_PROBLEMS]:
        table.add_row(
            row["dataset"],
            row["symbol"],
            str(row["trade_date"]),
            row["metric"],
            *(_number(row.get(name)) for name in ("observed", "mean", "stddev")),
            _number(row.get("zscore")),
            _number(row.get("threshold")),
        )
    return table


def _number(value: Any) -> str:
    return NOTHING if value is None else f"{float(value):,.4g}"


def _more(count: int) -> str | None:
    hidden = count - SHOWN_PROBLEMS
    return f"{hidden} more not shown: --json lists them all" if hidden > 0 else None


def checks_line(quality: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]) -> str:
    """`checks: 40 passed, 2 warned, 0 failed; drift alerts: 1`."""
    counts = quality_summary(quality)
    checks = ", ".join(f"{counts[status.value]} {status.value}" for status in CheckStatus)
    return f"checks: {checks if quality else 'none recorded'}; drift alerts: {len(alerts)}"


def checks_summary(details: Mapping[str, Any]) -> Group:
    """A run's checks (passed, warned, failed) and drift alerts, with the failed and warned
    checks and the alerts listed."""
    parts: list[Any] = [Text(checks_line(details["quality"], details["drift"]))]
    problems = problems_table(details["quality"])
    alerts = drift_table(details["drift"])
    parts += [part for part in (problems, alerts) if part is not None]
    return Group(*parts)


def run_header(run: Mapping[str, Any]) -> Table:
    """The run's own row: who started it, when, how long, how it ended."""
    table = Table(title=f"run {run['run_id']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    seconds = run_seconds(run)
    rows = [
        ("pipeline", f"{run['pipeline']} ({run['run_kind']})"),
        ("status", _status(run["status"])),
        ("started (UTC)", when(run["started_at"])),
        ("finished (UTC)", when(run.get("finished_at"))),
        ("seconds", NOTHING if seconds is None else f"{seconds:,.2f}"),
    ]
    if run.get("logical_date") or run.get("interval_start"):
        rows.append(("logical date", when(run.get("logical_date"))))
        interval = f"{when(run.get('interval_start'))} .. {when(run.get('interval_end'))}"
        rows.append(("data interval", interval))
    rows.append(("host / pid", f"{run.get('host') or NOTHING} / {run.get('pid') or NOTHING}"))
    if run.get("error"):
        rows.append(("error", Text(first_line(run["error"]))))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _as_json(value: Any) -> str:
    return json.dumps(value, default=_json_value)


def _json_value(item: Any) -> Any:
    """Timestamps and dates ISO; Decimals as numbers; anything else as text."""
    if hasattr(item, "isoformat"):
        return item.isoformat()
    if isinstance(item, Decimal):
        return float(item)
    return str(item)


# ------------------------------------------------------------------ commands


@runs_app.callback()
def runs(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs, newest first."),
    since: datetime | None = typer.Option(
        None,
        "--since",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="Only runs started at or after this time (UTC unless it says), among the latest "
        "--limit.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
    schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
) -> None:
    """The latest pipeline runs: id, pipeline, start, seconds, status, stages, checks
    (passed, warned, failed), drift alerts and the error's first line."""
    if ctx.invoked_subcommand is not None:
        return
    moment = since.replace(tzinfo=since.tzinfo or UTC) if since else None
    with _warehouse(get_settings(), schema) as warehouse:
        listed = listed_runs(warehouse, limit, moment)
    if as_json:
        print(_as_json(listed))
        return
    if not listed:
        what = f" since {when(moment)} UTC" if moment else ""
        console.print(
            f"no pipeline runs recorded{what}: every `stocklake` pipeline command and DAG task "
            "records one",
            markup=False,
        )
        return
    title = f"pipeline runs (latest {len(listed)}, newest first)"
    console.print(runs_table(listed, title))
    quality = {
        status.value: sum(run["checks"][status.value] for run in listed) for status in CheckStatus
    }
    alerts = sum(run["drift_alerts"] for run in listed)
    totals = ", ".join(f"{quality[status.value]} {status.value}" for status in CheckStatus)
    console.print(f"these runs' checks: {totals}; drift alerts: {alerts}", markup=False)


@runs_app.command("show")
def show(
    run_id: str = typer.Argument(..., help="A run id, as `stocklake runs` lists it."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
    schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
) -> None:
    """One run: its stages with their counts, its checks and its drift alerts.

    Checks are counted (passed, warned, failed) and each failed or warned one is listed.
    """
    with _warehouse(get_settings(), schema) as warehouse:
        details = run_details(warehouse, run_id)
    if details is None:
        raise _fail(f"no run {run_id!r} in pipeline_runs: `stocklake runs` lists the latest", 2)
    if as_json:
        print(_as_json({**details, "quality_summary": quality_summary(details["quality"])}))
        return
    console.print(run_header(details["run"]))
    if details["stages"]:
        console.print(stages_table(details["stages"]))
    else:
        console.print("no stages recorded", markup=False)
    console.print(checks_summary(details))


def register(app: typer.Typer) -> None:
    """`stocklake runs` and `stocklake runs show` on the main command."""
    app.add_typer(runs_app, name="runs")


def report_checks(settings: Settings) -> Group | Text:
    """`stocklake report`'s last part: the latest checked run's checks and drift alerts
    (read without migrating: a report creates no table)."""
    try:
        with connect_warehouse(settings) as warehouse:
            run_id = latest_checked_run(warehouse)
            details = run_details(warehouse, run_id) if run_id else None
            if run_id and details is None:  # results of a run with no pipeline_runs row
                details = {
                    "run": {"run_id": run_id, "pipeline": "?"},
                    "quality": warehouse.read_rows(QUALITY_RESULTS, {"run_id": run_id}),
                    "drift": warehouse.read_rows(DRIFT_ALERTS, {"run_id": run_id}),
                }
    except Exception as error:  # the drivers raise their own errors
        text = first_line(error) or type(error).__name__
        if "does not exist" not in text:
            return Text(f"checks and drift: not read ({text})")
        details = None  # the governance tables are not there yet
    if details is None:
        return Text(
            "checks and drift: none recorded yet (the DAGs run them; or `stocklake check "
            "DATASET --date D`, `stocklake drift --date D`)"
        )
    run = details["run"]
    title = Text(f"Checks and drift of the latest checked run: {run['run_id']} ({run['pipeline']})")
    title.stylize("bold")
    return Group(title, checks_summary(details))
