"""`stocklake check DATASET --date D` and `stocklake drift --date D`: the quality suite and
drift detection from the command line, results stored in quality_results / drift_alerts."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from loaders import SchemaNotFoundError, local_run_id
from loaders.checks import WAREHOUSE_TABLES, warehouse_quality
from loaders.governance import previous_checksum, record_drift, record_quality
from quality import (
    DriftError,
    PartitionNotFoundError,
    describe,
    drift_alerts,
    failures,
    raise_on_drift,
    run_checks,
)
from stocklake.governance import CheckStatus, Dataset
from stocklake.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

SCHEMA_HELP = "PostgreSQL schema (default WAREHOUSE_SCHEMA) or Snowflake schema (SNOWFLAKE_SCHEMA)."
DATASETS = ", ".join(Dataset)
STATUS_STYLE = {
    CheckStatus.PASSED: "green",
    CheckStatus.WARNED: "yellow",
    CheckStatus.FAILED: "red",
}


def _error(message: str, code: int) -> typer.Exit:
    """One line on stderr naming what is wrong; the exit to raise."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _short(value: str) -> str:
    """A checksum's first 12 hex digits (the whole one is stored); other values as they are."""
    is_digest = len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)
    return value[:12] + "…" if is_digest else value


def _results_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="quality checks")
    for name in ("dataset", "partition", "check", "observed", "expected", "status"):
        table.add_column(name, overflow="fold")  # a partition's prefix whole, never cut
    for row in rows:
        style = STATUS_STYLE[CheckStatus(row["status"])]
        table.add_row(
            row["dataset"],
            row["partition_name"],
            row["check_name"],
            _short(row["observed"]),
            _short(row["expected"]),
            f"[{style}]{row['status']}[/{style}]",
        )
    return table


def _checks(
    settings: Settings,
    dataset: Dataset,
    day: date,
    run_id: str,
    schema: str | None,
    lake_only: bool,
) -> list[dict[str, Any]]:
    def earlier(name: str, partition: str) -> str | None:
        return previous_checksum(settings, name, partition, schema, before_run=run_id)

    rows = run_checks(settings, dataset, day, run_id, previous_checksum=earlier)
    if dataset.value in WAREHOUSE_TABLES and not lake_only:
        rows += warehouse_quality(settings, dataset.value, day, run_id, schema=schema)
    return rows


def _check(
    dataset: str, day: datetime, run_id: str | None, schema: str | None, lake_only: bool
) -> None:
    if dataset not in set(Dataset):
        raise _error(f"unknown dataset {dataset!r}: one of {DATASETS}", 2)
    settings = get_settings()
    run_id = run_id or local_run_id("cli")
    try:
        rows = _checks(settings, Dataset(dataset), day.date(), run_id, schema, lake_only)
        record_quality(settings, rows, schema=schema)
    except (PartitionNotFoundError, SchemaNotFoundError) as error:
        raise _error(str(error), 2) from None
    console.print(_results_table(rows))
    for row in rows:
        if row["status"] != CheckStatus.PASSED.value and row["detail"]:
            line = f"{row['check_name']} ({row['status']}): {row['detail']}"
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    failed = failures(rows)
    for row in failed:
        err_console.print(f"failed: {describe(row)}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _drift_table(alerts: Sequence[Mapping[str, Any]], day: date) -> Table:
    table = Table(title=f"drift alerts on {day}")
    for name in ("dataset", "symbol", "metric", "observed", "mean", "stddev", "zscore"):
        table.add_column(
            name, justify="left" if name in ("dataset", "symbol", "metric") else "right"
        )
    for alert in alerts:
        numbers = (f"{alert[name]:.6g}" for name in ("observed", "mean", "stddev"))
        table.add_row(
            alert["dataset"], alert["symbol"], alert["metric"], *numbers, f"{alert['zscore']:.2f}"
        )
    return table


def _drift(day: datetime, run_id: str | None, schema: str | None) -> None:
    settings = get_settings()
    run_id = run_id or local_run_id("cli")
    try:
        alerts = drift_alerts(settings, day.date(), run_id)
        record_drift(settings, alerts, schema=schema)
    except (PartitionNotFoundError, SchemaNotFoundError) as error:
        raise _error(str(error), 2) from None
    if alerts:
        console.print(_drift_table(alerts, day.date()))
    else:
        console.print(
            f"no drift on {day.date()}: every value within {settings.drift_z_threshold:g} "
            f"standard deviations of its trailing {settings.drift_window_days} trading days"
        )
    try:
        raise_on_drift(settings, alerts)
    except DriftError as error:
        raise _error(str(error), 1) from None


DATE_OPTION = typer.Option(
    ..., "--date", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="The date to check."
)
RUN_ID_HELP = "The pipeline run the results belong to (default: a new CLI run id)."


def register(app: typer.Typer) -> None:
    """Add `check` and `drift` to the main app."""

    @app.command("check")
    def check(
        dataset: str = typer.Argument(..., metavar="DATASET", help=f"One of {DATASETS}."),
        day: datetime = DATE_OPTION,
        run_id: str | None = typer.Option(None, "--run-id", help=RUN_ID_HELP),
        schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
        lake_only: bool = typer.Option(
            False, "--lake-only", help="Skip the warehouse checks (row counts, checksum)."
        ),
    ) -> None:
        """Run a dataset's declared quality checks on one date; store them in quality_results.

        Exits 1 when a check fails at severity fail (QUALITY_FAIL_CHECKS), 0 otherwise.
        """
        _check(dataset, day, run_id, schema, lake_only)

    @app.command("drift")
    def drift(
        day: datetime = DATE_OPTION,
        run_id: str | None = typer.Option(None, "--run-id", help=RUN_ID_HELP),
        schema: str | None = typer.Option(None, "--schema", help=SCHEMA_HELP),
    ) -> None:
        """Z-scores of each symbol's volume, range, return and tick count on one date against
        its trailing DRIFT_WINDOW_DAYS trading days; alerts stored in drift_alerts.

        Exits 1 on alerts when DRIFT_SEVERITY is fail.
        """
        _drift(day, run_id, schema)
