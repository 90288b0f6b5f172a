"""The pipeline page's latest quality checks and drift alerts (Streamlit's AppTest)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dashboard import queries
from loaders import connect_warehouse
from loaders.governance import record_drift, record_quality
from stocklake.governance import DRIFT_ALERTS_COLUMNS, QUALITY_RESULTS_COLUMNS
from stocklake.settings import Settings
from tests.dashboard.test_pages import run_page, texts

pytestmark = pytest.mark.services

PAGE = "views/pipeline.py"


def _check(run_id: str, check: str, status: str, at: datetime) -> dict:
    row = {
        "run_id": run_id,
        "dataset": "daily_metrics",
        "partition_name": "processed/historical/date=2020-12-31/",
        "check_name": check,
        "severity": "fail" if status == "failed" else "warn",
        "status": status,
        "observed": "1" if status != "passed" else "0",
        "expected": "0",
        "detail": f"{check}: AAPL 2020-12-31" if status != "passed" else "",
        "checked_at": at,
    }
    assert tuple(row) == tuple(name for name, _ in QUALITY_RESULTS_COLUMNS)
    return row


def _alert(run_id: str, symbol: str, zscore: float) -> dict:
    row = {
        "run_id": run_id,
        "dataset": "daily_metrics",
        "symbol": symbol,
        "trade_date": date(2020, 12, 31),
        "metric": "volume",
        "observed": 1.0e9,
        "mean": 1.0e8,
        "stddev": 2.0e7,
        "zscore": zscore,
        "threshold": 3.0,
        "window_days": 60,
        "created_at": datetime.now(UTC),
    }
    assert tuple(row) == tuple(name for name, _ in DRIFT_ALERTS_COLUMNS)
    return row


def test_latest_checks_and_drift_alerts(empty_schema: str, dashboard_env, stack: Settings) -> None:
    before = datetime.now(UTC) - timedelta(hours=1)
    now = datetime.now(UTC)
    rows = [
        _check("older-run", "keys_unique", "failed", before),
        _check("latest-run", "keys_unique", "passed", now),
        _check("latest-run", "ohlc_consistent", "warned", now),
        _check("latest-run", "volume_non_negative", "failed", now),
    ]
    record_quality(stack, rows, schema=empty_schema)
    record_drift(
        stack,
        [_alert("latest-run", "AAPL", 45.0), _alert("latest-run", "TSLA", -4.0)],
        empty_schema,
    )
    dashboard_env(empty_schema)

    app = run_page(PAGE)

    assert not app.exception, app.exception
    checks, alerts = (frame.value for frame in app.dataframe[-2:])
    assert list(checks["status"]) == ["failed", "warned", "passed"]  # the latest run only
    assert checks["check_name"].iloc[0] == "volume_non_negative"
    assert [metric.value for metric in app.metric] == ["1", "1", "1"]
    assert list(alerts["symbol"]) == ["AAPL", "TSLA"]  # the largest |z| first
    assert "latest-run" in texts(app)


def test_no_checks_and_no_alerts_say_so(empty_schema: str, dashboard_env, stack: Settings) -> None:
    with connect_warehouse(stack, schema=empty_schema) as warehouse:
        warehouse.migrate()
    dashboard_env(empty_schema)

    app = run_page(PAGE)

    assert not app.exception, app.exception
    text = texts(app)
    assert "No quality checks recorded yet" in text
    assert "stocklake check daily_metrics --date YYYY-MM-DD" in text
    assert "No drift alerts" in text and "stocklake drift --date YYYY-MM-DD" in text


def test_statements_name_the_governance_tables(stack: Settings) -> None:
    checks = queries.latest_checks_sql(stack)
    assert "FROM " + queries.table(stack, queries.QUALITY_TABLE) in checks
    assert "WHEN 'failed' THEN 0" in checks
    assert queries.table(stack, queries.DRIFT_TABLE) in queries.recent_drift_sql(stack)
