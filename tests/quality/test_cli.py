"""`stocklake check` and `stocklake drift` end to end: a small partition in a private bucket,
results in a private PostgreSQL schema."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cli.app import app
from loaders.tables import DRIFT_ALERTS, QUALITY_RESULTS
from quality import run_checks
from stocklake.schemas import DAILY_METRICS_COLUMNS, arrow_schema
from stocklake.settings import load_settings
from tests.loaders.conftest import Backend
from tests.loaders.data import TestLake
from tests.quality.data import daily_bars, daily_metrics, minute_bars, raw_lines, raw_object_key

DAY = date(2020, 12, 4)
SYMBOLS = ("AAPL", "TSLA")


def test_a_bad_argument_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["check", "daily_bars", "--date", "2020-12-04"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("error: unknown dataset 'daily_bars': one of raw_bars, raw_ticks")


def _metrics(volume_factor: dict[str, float] | None = None) -> pa.Table:
    """The real daily metrics of AAPL and TSLA, 2020-11-02 .. DAY."""
    frame = daily_metrics(SYMBOLS)
    frame = frame[(frame["trade_date"] >= date(2020, 11, 2)) & (frame["trade_date"] <= DAY)]
    for symbol, factor in (volume_factor or {}).items():
        today = (frame["symbol"] == symbol) & (frame["trade_date"] == DAY)
        frame.loc[today, "daily_volume"] = (frame.loc[today, "daily_volume"] * factor).astype(int)
    schema = arrow_schema(DAILY_METRICS_COLUMNS)
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _day_only(table: pa.Table) -> pa.Table:
    return table.filter(pa.compute.equal(table["trade_date"], pa.scalar(DAY)))


def _results(postgres: Backend, run_id: str) -> dict[str, dict]:
    columns = tuple(name for name, _ in QUALITY_RESULTS.columns)
    rows = [dict(zip(columns, row, strict=True)) for row in postgres.rows(QUALITY_RESULTS)]
    return {f"{r['partition_name']} {r['check_name']}": r for r in rows if r["run_id"] == run_id}


@pytest.mark.services
def test_check_and_drift_end_to_end(cli: CliRunner, lake: TestLake, postgres: Backend) -> None:
    lake.put_daily(_metrics())
    bars = [daily_bars(symbol) for symbol in SYMBOLS]
    raw = [frame[frame["ts"].dt.date == DAY] for frame in bars]
    lake.fs.pipe(f"{lake.bucket}/{raw_object_key(DAY, 0, 1)}", b"".join(map(raw_lines, raw)))
    loaded = cli.invoke(app, ["load", "daily", "--date", DAY.isoformat()])
    assert loaded.exit_code == 0, loaded.output

    first = cli.invoke(app, ["check", "daily_metrics", "--date", "2020-12-04", "--run-id", "q1"])
    assert first.exit_code == 0, first.output
    assert "daily_continuity" in first.output and "passed" in first.output
    stored = _results(postgres, "q1")
    partition = "processed/historical/date=2020-12-04/"
    lake_sum = stored[f"{partition} checksum"]["observed"]
    assert len(stored) == 9 and {r["status"] for r in stored.values()} == {"passed"}
    assert stored[f"{partition} row_counts"]["expected"] == "2"  # symbol-days of raw bars
    # The warehouse's rows of the date hash as the lake partition's (one canonical form).
    assert stored["daily_metrics date=2020-12-04 checksum"]["observed"] == lake_sum

    again = cli.invoke(app, ["check", "daily_metrics", "--date", "2020-12-04", "--run-id", "q2"])
    assert again.exit_code == 0, again.output
    rerun = _results(postgres, "q2")[f"{partition} checksum"]
    assert (rerun["observed"], rerun["expected"], rerun["status"]) == (lake_sum, lake_sum, "passed")

    bad = _day_only(_metrics({"AAPL": -1}))
    lake.put_daily(bad)
    failed = cli.invoke(app, ["check", "daily_metrics", "--date", "2020-12-04", "--lake-only"])
    assert failed.exit_code == 1, failed.output
    assert f"daily_metrics {partition} volume_non_negative: observed 1" in failed.output
    assert "checksum (warned): rows changed since the last run" in failed.output

    missing = cli.invoke(app, ["check", "daily_metrics", "--date", "2020-12-05"])
    assert missing.exit_code == 2, missing.output
    (line,) = missing.output.splitlines()
    assert f"no daily_metrics partition at s3://{lake.bucket}/processed/historical/" in line

    lake.put_daily(_day_only(_metrics({"AAPL": 10})))
    drift = cli.invoke(app, ["drift", "--date", "2020-12-04", "--run-id", "d1"])
    assert drift.exit_code == 0, drift.output
    alerts = postgres.rows(DRIFT_ALERTS, ("run_id", "symbol", "metric", "trade_date"))
    assert alerts == [("d1", "AAPL", "volume", DAY)]


@pytest.mark.services
def test_raw_bars_in_the_lake_report_the_real_minute_oddities(lake: TestLake) -> None:
    settings = load_settings(LAKE_BUCKET=lake.bucket)
    minutes, apple = minute_bars(), daily_bars("AAPL")
    for day in (date(2019, 5, 20), date(2019, 5, 21)):
        bars = [minutes[minutes["ts"].dt.date == day], apple[apple["ts"].dt.date == day]]
        lake.fs.pipe(f"{lake.bucket}/{raw_object_key(day, 0, 391)}", b"".join(map(raw_lines, bars)))
    rows = {r["check_name"]: r for r in run_checks(settings, "raw_bars", date(2019, 5, 21), "q")}
    assert {name for name, r in rows.items() if r["status"] != "passed"} == {"minute_continuity"}
    assert rows["minute_continuity"]["status"] == "warned"
    assert "META 2019-05-21: 390 bars, 1 missing (09:34)" in rows["minute_continuity"]["detail"]
    assert rows["daily_continuity"]["observed"] == "0 gap(s)"  # AAPL's 2019-05-20 is there
    # The same bars landed again (a forced re-send): duplicate timestamps, a warning.
    again = raw_lines(minutes[minutes["ts"].dt.date == date(2019, 5, 21)].head(3))
    lake.fs.pipe(f"{lake.bucket}/{raw_object_key(date(2019, 5, 21), 392, 394)}", again)
    rows = {r["check_name"]: r for r in run_checks(settings, "raw_bars", date(2019, 5, 21), "q")}
    assert (rows["duplicate_timestamps"]["status"], rows["duplicate_timestamps"]["observed"]) == (
        "warned",
        "3",
    )
