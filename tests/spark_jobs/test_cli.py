"""`stocklake spark ...` as a user runs it: a separate process, exit codes, summaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.spark_jobs.rawdata import fb_minute_bars, put_raw_historical


def test_option_mistakes_exit_before_spark_starts() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["spark", "stream"])
    assert result.exit_code == 2
    assert "exactly one of --available-now or --processing-time" in result.output
    result = runner.invoke(app, ["spark", "daily"])
    assert result.exit_code == 2
    assert "--full-refresh" in result.output
    result = runner.invoke(app, ["spark", "daily", "--date", "2019-05-20", "--start", "2019-05-20"])
    assert result.exit_code == 2
    # --end is exclusive: an end on (or before) the start is an empty range.
    for end in ("2019-05-20", "2019-05-19"):
        result = runner.invoke(app, ["spark", "daily", "--start", "2019-05-20", "--end", end])
        assert result.exit_code == 2, result.output
        assert "--end" in result.output and "exclusive" in result.output


def _stocklake(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        LAKE_BUCKET=settings.lake_bucket,
        S3_ENDPOINT_URL=settings.s3_endpoint_url,
        SPARK_MASTER="local[2]",
    )
    return subprocess.run(
        [sys.executable, "-m", "cli", "spark", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.services
@pytest.mark.spark
def test_daily_cli_summary_and_exit_codes(lake_settings, s3_client) -> None:
    put_raw_historical(s3_client, lake_settings.lake_bucket, fb_minute_bars())
    # --end is exclusive (like Airflow's data intervals): 2019-05-24 is not computed.
    done = _stocklake(
        lake_settings, "daily", "--start", "2019-05-20", "--end", "2019-05-24", "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dates_requested"] == ["2019-05-20", "2019-05-21", "2019-05-22", "2019-05-23"]
    assert summary["output_rows"] == 4
    assert len(summary["partitions_written"]) == 4
    assert summary["seconds"] > 0

    one = _stocklake(lake_settings, "daily", "--date", "2019-05-24")
    assert one.returncode == 0, one.stderr
    assert "dates written: 2019-05-24" in one.stdout

    # A range over a weekend and a holiday: those are skipped up front, not "empty".
    weekend = _stocklake(lake_settings, "daily", "--start", "2019-05-24", "--end", "2019-05-28")
    assert weekend.returncode == 0, weekend.stderr
    printed = " ".join(weekend.stdout.split())  # the console wraps long lines
    assert "dates written: 2019-05-24" in printed
    assert (
        "dates not trading: 2019-05-25 (Saturday), 2019-05-26 (Sunday), "
        "2019-05-27 (holiday: Memorial Day)"
    ) in printed

    # Tuesday 2019-05-28 is a trading date without bars.
    missing = _stocklake(lake_settings, "daily", "--date", "2019-05-28")
    assert missing.returncode == 3
    assert "2019-05-28" in missing.stderr
