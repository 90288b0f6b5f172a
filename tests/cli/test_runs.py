"""Every pipeline command records its run; `stocklake runs`, `runs show` and the report's
checks and drift, on the local PostgreSQL in a schema (and a bucket) of the test's own."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.app import app
from cli.command_run import command_run, summary_counts
from cli.runs import report_checks
from ingestion.producer import ProduceSummary
from loaders.governance import record_drift, record_quality
from loaders.load import LoadSummary
from spark_jobs.daily import DailySummary
from stocklake.governance import DRIFT_ALERTS_COLUMNS, QUALITY_RESULTS_COLUMNS
from stocklake.settings import get_settings
from streaming.summary import LandSummary
from tests.ingestion.test_produce_kafka import admin, topic  # noqa: F401 (fixtures)
from tests.loaders.conftest import Backend
from tests.loaders.data import TestLake, daily_metrics


def _text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(renderable)
    return out.getvalue()


# ------------------------------------------------------------------ counts (no services)


def test_each_summary_maps_to_stage_counts() -> None:
    land = LandSummary("historical", "bars", "g", "lake", records_in=10, landed=8)
    land.quarantined.update({"bad_json": 2})
    land.objects_written, land.bytes_written = 3, 4096
    assert summary_counts("land historical", land.to_dict()) == {
        "records_in": 10,
        "records_out": 8,
        "records_quarantined": 2,
        "objects_written": 3,
        "bytes_written": 4096,
    }
    produced = ProduceSummary(topic="bars", source="csv", records=7, failed=1, bytes=900)
    assert summary_counts("produce historical", produced.as_dict()) == {
        "records_in": 8,
        "records_out": 7,
        "bytes_written": 900,
    }
    daily = DailySummary(
        dates_requested=["2020-12-30", "2020-12-31"],
        input_rows=20,
        duplicates_dropped=2,
        output_rows=18,
        partitions_written=["date=2020-12-30", "date=2020-12-31"],
    )
    assert summary_counts("spark daily", daily.as_dict()) == {
        "records_in": 20,
        "records_out": 18,
        "duplicates_dropped": 2,
        "objects_written": 2,
    }
    load = LoadSummary("r", "daily_metrics", "dates", rows_read=9, rows_inserted=5)
    load.rows_updated, load.rows_duplicate, load.rows_rejected = 2, 1, 1
    assert summary_counts("load daily", load.as_dict()) == {
        "records_in": 9,
        "records_out": 7,
        "records_quarantined": 1,
        "duplicates_dropped": 1,
    }
    card_rows = {"rows": {"train": 70, "validate": 10, "test": 20}}
    assert summary_counts("train stress", card_rows) == {"records_in": 100}


def test_metadata_not_recorded_is_one_warning_line_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAREHOUSE", "postgres")
    monkeypatch.setenv("POSTGRES_PORT", "1")  # nothing listens there
    get_settings.cache_clear()
    try:
        with command_run("spark daily") as run:
            run.count({"input_rows": 3, "output_rows": 3})
    finally:
        get_settings.cache_clear()
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: run metadata not recorded (start): "), line


# ------------------------------------------------------------------ on the local stack


@pytest.mark.services
def test_a_load_records_its_run_and_stage_with_counts(cli: CliRunner, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))

    loaded = cli.invoke(app, ["load", "daily", "--json"])
    assert loaded.exit_code == 0, loaded.output
    summary = json.loads(loaded.output)
    run_id = summary["pipeline_run_id"]

    shown = cli.invoke(app, ["runs", "show", run_id, "--json"])
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.output)
    run = details["run"]
    assert (run["run_kind"], run["pipeline"], run["status"]) == ("cli", "load daily", "succeeded")
    [stage] = details["stages"]
    assert stage["stage"] == "load daily" and stage["status"] == "succeeded"
    assert (stage["records_in"], stage["records_out"], stage["duplicates_dropped"]) == (
        summary["rows_read"],
        summary["rows_inserted"] + summary["rows_updated"],
        summary["rows_duplicate"],
    )
    assert stage["records_in"] > 0 and stage["objects_written"] is None

    printed = cli.invoke(app, ["load", "daily"])  # nothing new: still a run, with zeros
    assert printed.exit_code == 0 and "stocklake runs show cli:" in printed.output

    listed = cli.invoke(app, ["runs", "--limit", "5"])
    assert listed.exit_code == 0, listed.output
    assert run_id in listed.output and "load daily" in listed.output
    assert "succeeded" in listed.output
    as_json = json.loads(cli.invoke(app, ["runs", "--json"]).output)
    assert run_id in [row["run_id"] for row in as_json]
    assert {row["stages"] for row in as_json} == {1}


@pytest.mark.services
def test_an_unknown_run_is_one_line_and_exit_2(cli: CliRunner) -> None:
    shown = cli.invoke(app, ["runs", "show", "no-such-run"])
    assert shown.exit_code == 2
    assert shown.output.splitlines() == [
        "error: no run 'no-such-run' in pipeline_runs: `stocklake runs` lists the latest"
    ]
    empty = cli.invoke(app, ["runs"])
    assert empty.exit_code == 0 and "no pipeline runs recorded" in empty.output


def _quality_row(run_id: str, check: str, status: str, observed: str) -> dict:
    values = {
        "run_id": run_id,
        "dataset": "daily_metrics",
        "partition_name": "processed/historical/date=2020-12-31/",
        "check_name": check,
        "severity": "fail" if status == "failed" else "warn",
        "status": status,
        "observed": observed,
        "expected": "0",
        "detail": f"{check} detail",
        "checked_at": datetime.now(UTC),
    }
    assert tuple(values) == tuple(name for name, _ in QUALITY_RESULTS_COLUMNS)
    return values


def _drift_row(run_id: str) -> dict:
    values = {
        "run_id": run_id,
        "dataset": "daily_metrics",
        "symbol": "AAPL",
        "trade_date": date(2020, 12, 31),
        "metric": "volume",
        "observed": 1.0e9,
        "mean": 1.0e8,
        "stddev": 2.0e7,
        "zscore": 45.0,
        "threshold": 3.0,
        "window_days": 60,
        "created_at": datetime.now(UTC),
    }
    assert tuple(values) == tuple(name for name, _ in DRIFT_ALERTS_COLUMNS)
    return values


@pytest.mark.services
def test_runs_show_and_the_report_summarise_checks_and_drift(
    cli: CliRunner,
    postgres: Backend,
) -> None:
    assert "none recorded yet" in _text(report_checks(get_settings()))  # no tables yet
    loaded = json.loads(cli.invoke(app, ["load", "daily", "--json"]).output)
    run_id = loaded["pipeline_run_id"]
    rows = [
        _quality_row(run_id, "keys_unique", "passed", "0"),
        _quality_row(run_id, "ohlc_consistent", "warned", "2"),
        _quality_row(run_id, "volume_non_negative", "failed", "1"),
    ]
    record_quality(postgres.settings, rows, schema=postgres.schema)
    record_drift(postgres.settings, [_drift_row(run_id)], schema=postgres.schema)

    shown = cli.invoke(app, ["runs", "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "checks: 1 passed, 1 warned, 1 failed; drift alerts: 1" in shown.output
    assert "volume_non_negative" in shown.output and "ohlc_consistent" in shown.output
    assert "keys_unique" not in shown.output  # passed checks are counted, not listed
    assert "AAPL" in shown.output and "45" in shown.output

    listed = cli.invoke(app, ["runs"])
    assert "1 passed, 1 warned, 1 failed" in listed.output

    reported = cli.invoke(app, ["report"])  # the test's bucket and schema
    assert reported.exit_code == 0, reported.output
    report = reported.output
    assert f"latest checked run: {run_id} (load daily)" in report
    assert "checks: 1 passed, 1 warned, 1 failed; drift alerts: 1" in report
    assert "volume_non_negative" in report


@pytest.mark.services
def test_check_records_its_run_and_its_results_carry_the_run_id(
    cli: CliRunner,
    lake: TestLake,
) -> None:
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31"))

    checked = cli.invoke(app, ["check", "daily_metrics", "--date", "2020-12-31", "--lake-only"])

    # No raw bars in the test's bucket: the row-count check fails at severity fail.
    assert checked.exit_code == 1, checked.output
    [run] = json.loads(cli.invoke(app, ["runs", "--json"]).output)
    assert (run["pipeline"], run["status"]) == ("check", "failed")
    assert run["error"] == "check: a check failed at severity fail"
    assert run["checks"]["failed"] >= 1 and run["checks"]["passed"] >= 1
    details = json.loads(cli.invoke(app, ["runs", "show", run["run_id"], "--json"]).output)
    assert {row["run_id"] for row in details["quality"]} == {run["run_id"]}
    assert details["quality_summary"] == run["checks"]


def test_make_run_ends_with_its_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from infra import pipeline_run

    called: list[list[str]] = []
    monkeypatch.setattr(pipeline_run, "run_command", called.append)
    pipeline_run.show_runs(datetime(2020, 12, 31, 21, 5, 9, tzinfo=UTC))
    assert called == [["runs", "--since", "2020-12-31T21:05:09+0000", "--limit", "100"]]

    def down(args: list[str]) -> None:
        raise pipeline_run.PipelineError("stocklake runs failed (exit 1)")

    monkeypatch.setattr(pipeline_run, "run_command", down)
    pipeline_run.show_runs(datetime(2020, 12, 31, tzinfo=UTC))  # a line, not a failure
    assert "(not shown: stocklake runs failed (exit 1))" in capsys.readouterr().out


@pytest.mark.services
def test_the_same_csv_twice_is_refused_then_forced(cli: CliRunner, admin, topic: str) -> None:  # noqa: F811
    args = ["produce", "historical", "--source", "csv", "--symbols", "AAPL", "--topic", topic]
    args += ["--start", "2020-10-01", "--end", "2020-10-08", "--json"]
    first = cli.invoke(app, args)
    assert first.exit_code == 0, first.output
    first_run = json.loads(first.output)["pipeline_run_id"]

    again = cli.invoke(app, args)
    assert again.exit_code == 1
    said = " ".join(again.output.split())  # the console wraps long lines
    assert f"was already sent by run {first_run} at" in said
    assert said.endswith("send it again with --force")

    skipped = cli.invoke(app, [*args, "--if-new"])
    assert skipped.exit_code == 0, skipped.output
    said = json.loads(skipped.output)
    assert said["records"] == 0 and f"already sent by run {first_run}" in said["notes"][0]

    forced = cli.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    rows = json.loads(
        cli.invoke(
            app,
            [
                "sql",
                "--json",
                "SELECT run_id, delivery, records FROM ingestion_metadata ORDER BY sent_at",
            ],
        ).output
    )
    assert [(row["run_id"] == first_run, row["delivery"], row["records"]) for row in rows] == [
        (True, "first", 5),
        (False, "forced", 5),
    ]
