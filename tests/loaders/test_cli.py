"""`stocklake load daily|realtime` and `stocklake sql` on the local PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cli.app import app
from loaders import DAILY_METRICS
from stocklake import lake as lake_layout
from stocklake.schemas import DAILY_FEATURES_COLUMNS, INTRADAY_FEATURES_COLUMNS, arrow_schema
from tests.loaders.conftest import Backend, abandoned_load, exited_pid
from tests.loaders.data import TestLake, daily_metrics, window_metrics

pytestmark = pytest.mark.services


def test_load_prints_a_summary_and_sql_shows_the_rows(cli: CliRunner, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))

    loaded = cli.invoke(app, ["load", "daily", "--date", "2020-12-31"])
    assert loaded.exit_code == 0, loaded.output
    assert "daily_metrics" in loaded.output and "inserted" in loaded.output

    as_json = cli.invoke(app, ["load", "daily", "--json"])
    summary = json.loads(as_json.output)
    assert (summary["partitions"], summary["rows_inserted"]) == (["date=2020-12-30"], 4)

    query = "SELECT symbol, daily_close FROM daily_metrics WHERE trade_date = '2020-12-31'"
    rows = json.loads(cli.invoke(app, ["sql", query + " ORDER BY symbol", "--json"]).output)
    assert {"symbol": "AAPL", "daily_close": 132.69000244140625} in rows
    printed = cli.invoke(app, ["sql", "SELECT status, rows_inserted FROM load_audit"])
    assert printed.exit_code == 0 and "succeeded" in printed.output

    nothing = cli.invoke(app, ["load", "daily"])
    assert nothing.exit_code == 0 and "nothing to load" in nothing.output


def test_a_cli_load_is_audited_as_a_cli_run(cli: CliRunner, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31"))

    printed = cli.invoke(app, ["load", "daily"])
    assert printed.exit_code == 0, printed.output
    assert re.search(r"seconds[ │]+\d+\.\d\d s ", printed.output), printed.output
    query = "SELECT pipeline_run_id, logical_date, duration_seconds FROM load_audit"
    (audit,) = json.loads(cli.invoke(app, ["sql", query, "--json"]).output)
    run = audit["pipeline_run_id"]
    assert re.fullmatch(r"cli:[^@]+@[^:]+:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", run), run
    assert run in printed.output
    assert audit["logical_date"] is None and audit["duration_seconds"] >= 0


def test_realtime_load_and_full_refresh(cli: CliRunner, lake: TestLake) -> None:
    lake.put_windows(window_metrics("2019-05-20"))
    first = json.loads(cli.invoke(app, ["load", "realtime", "--json"]).output)
    again = json.loads(cli.invoke(app, ["load", "realtime", "--full-refresh", "--json"]).output)
    assert first["rows_inserted"] > 0
    assert (again["mode"], again["rows_inserted"], again["rows_unchanged"]) == (
        "full-refresh",
        0,
        first["rows_inserted"],
    )


def test_end_is_exclusive_and_date_is_one_day(cli: CliRunner, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-29", "2020-12-31"))

    span = cli.invoke(
        app, ["load", "daily", "--start", "2020-12-29", "--end", "2020-12-31", "--json"]
    )
    assert span.exit_code == 0, span.output
    assert json.loads(span.output)["partitions"] == ["date=2020-12-29", "date=2020-12-30"]
    one = json.loads(cli.invoke(app, ["load", "daily", "--date", "2020-12-31", "--json"]).output)
    assert one["partitions"] == ["date=2020-12-31"]

    empty = cli.invoke(app, ["load", "daily", "--start", "2020-12-31", "--end", "2020-12-31"])
    assert empty.exit_code == 2
    assert "--end" in empty.output and "exclusive" in empty.output
    assert "Traceback" not in empty.output


WIDE = (
    "SELECT 'trade_' || repeat('x', 60) AS long_text, 3733.123456789::float8 AS price,"
    " NULL AS nothing"
)


def test_sql_never_cuts_cells_and_offers_vertical_when_too_wide(cli: CliRunner) -> None:
    table = cli.invoke(app, ["sql", WIDE], env={"COLUMNS": "60"})
    assert table.exit_code == 0, table.output
    assert "trade_" + "x" * 60 in table.output and "3733.123456789" in table.output
    assert "…" not in table.output and "(1 row)" in table.output
    assert "wide" in table.output and "--format vertical" in table.output

    roomy = cli.invoke(app, ["sql", WIDE], env={"COLUMNS": "200"})
    assert "--format vertical" not in roomy.output

    cut = cli.invoke(app, ["sql", WIDE, "--max-width", "10"], env={"COLUMNS": "60"})
    assert "trade_xxx…" in cut.output and "3733.1234…" in cut.output
    assert "--format vertical" not in cut.output


def test_sql_vertical_csv_and_json(cli: CliRunner) -> None:
    vertical = cli.invoke(app, ["sql", WIDE + " UNION ALL " + WIDE, "--format", "vertical"])
    assert vertical.exit_code == 0, vertical.output
    lines = vertical.output.splitlines()
    assert lines[0].startswith("-[ RECORD 1 ]-") and lines[4].startswith("-[ RECORD 2 ]-")
    assert lines[1:4] == [
        "long_text | trade_" + "x" * 60,
        "price     | 3733.123456789",
        "nothing   | NULL",
    ]

    as_csv = cli.invoke(app, ["sql", WIDE, "--format", "csv"]).output.splitlines()
    assert as_csv == ["long_text,price,nothing", f"trade_{'x' * 60},3733.123456789,"]

    as_json = cli.invoke(app, ["sql", WIDE, "--format", "json"]).output
    assert json.loads(as_json) == json.loads(cli.invoke(app, ["sql", WIDE, "--json"]).output)
    assert json.loads(as_json)[0]["price"] == 3733.123456789

    for bad in (["--max-width", "0"], ["--format", "wide"], ["--json", "--format", "csv"]):
        refused = cli.invoke(app, ["sql", WIDE, *bad])
        assert refused.exit_code == 2, (bad, refused.output)
        assert bad[-2] in refused.output and "Traceback" not in refused.output


def test_ls_objects_lists_keys_sizes_times_and_a_total(cli: CliRunner, lake: TestLake) -> None:
    keys = lake.put_daily(daily_metrics("2020-12-30", "2020-12-31"))
    sizes = {key: lake.fs.size(f"{lake.bucket}/{key}") for key in keys}

    listed = cli.invoke(app, ["ls", "processed/historical", "--objects"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == f"s3://{lake.bucket}/processed/historical/"
    for key, line in zip(keys, lines[1:3], strict=True):
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +[\d.]+ K?B  " + re.escape(key), line
        ), line
    total = sum(sizes.values())
    assert lines[3].startswith("total: 2 objects, ") and f"({total:,} bytes)" in lines[3]

    tree = cli.invoke(app, ["ls", "processed/historical"])
    assert "date=2020-12-30/" in tree.output and keys[0] not in tree.output


def test_bad_input_exits_non_zero_with_a_reason(cli: CliRunner, lake: TestLake) -> None:
    both = cli.invoke(app, ["load", "daily", "--date", "2020-12-31", "--start", "2020-12-01"])
    assert both.exit_code != 0 and "not both" in both.output
    backwards = cli.invoke(app, ["load", "daily", "--start", "2020-12-31", "--end", "2020-12-01"])
    assert backwards.exit_code != 0 and "after" in backwards.output
    bad_sql = cli.invoke(app, ["sql", "SELECT * FROM no_such_table"])
    assert bad_sql.exit_code == 1 and "no_such_table" in bad_sql.output


def test_sql_is_read_only_and_one_statement_unless_asked(cli: CliRunner, lake: TestLake) -> None:
    lake.put_daily(daily_metrics("2020-12-31", "2020-12-31"))
    assert cli.invoke(app, ["load", "daily"]).exit_code == 0
    count = "SELECT COUNT(*) AS n FROM daily_metrics"

    program = cli.invoke(app, ["sql", "COPY (SELECT 1) TO PROGRAM 'id'"])
    assert program.exit_code == 1 and "pg_execute_server_program" in program.output
    read_file = cli.invoke(app, ["sql", "SELECT pg_read_file('/etc/hostname')"])
    assert read_file.exit_code == 1, read_file.output
    assert "permission denied for function pg_read_file" in read_file.output
    delete = cli.invoke(app, ["sql", "DELETE FROM daily_metrics"])
    assert delete.exit_code == 1 and "read-only transaction" in delete.output
    two = cli.invoke(app, ["sql", f"{count}; DELETE FROM daily_metrics"])
    assert two.exit_code == 1 and "one statement per call: --allow-multiple" in two.output
    # Several statements only when asked, and still as the read-only role.
    both = cli.invoke(app, ["sql", "SELECT 1 AS a; SELECT 2 AS b", "--allow-multiple", "--json"])
    assert json.loads(both.output) == [{"b": 2}]
    escape = "COMMIT; BEGIN READ WRITE; DELETE FROM daily_metrics"
    denied = cli.invoke(app, ["sql", escape, "--allow-multiple"])
    assert denied.exit_code == 1 and "permission denied for table daily_metrics" in denied.output
    assert json.loads(cli.invoke(app, ["sql", count, "--json"]).output) == [{"n": 4}]
    # --write is the pipeline's role.
    written = cli.invoke(app, ["sql", "DELETE FROM daily_metrics WHERE symbol = 'AAPL'", "--write"])
    assert written.exit_code == 0, written.output
    assert json.loads(cli.invoke(app, ["sql", count, "--json"]).output) == [{"n": 3}]


def test_schema_must_exist(cli: CliRunner, lake: TestLake) -> None:
    for args in (["sql", "SELECT 1"], ["load", "daily"]):
        result = cli.invoke(app, [*args, "--schema", "nonexistent"])
        assert result.exit_code == 2, result.output
        (line,) = result.output.splitlines()
        assert line.startswith("error: schema 'nonexistent' does not exist in database ")


def test_status_marks_loads_whose_process_is_gone_failed(cli: CliRunner, postgres: Backend) -> None:
    pid = exited_pid()
    run_id = abandoned_load(postgres, DAILY_METRICS, pid)

    status = cli.invoke(app, ["status"])

    assert f"load {run_id} of daily_metrics marked failed: load process gone (pid {pid}" in (
        status.output
    )
    assert [a["status"] for a in postgres.audit(DAILY_METRICS)] == ["failed"]


def _feature_rows(columns, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [{name: row.get(name) for name, _ in columns} for row in rows],
        schema=arrow_schema(columns),
    )


def test_load_features_loads_both_feature_tables(cli: CliRunner, lake: TestLake) -> None:
    day = date(2020, 12, 31)
    daily = _feature_rows(
        DAILY_FEATURES_COLUMNS,
        [
            {"symbol": "AAPL", "trade_date": day, "close": 132.69, "volume": 99116600},
            {"symbol": "TSLA", "trade_date": day, "close": 705.67, "sma_7": 680.5},
        ],
    )
    bar = datetime(2020, 12, 31, 14, 30, tzinfo=UTC)
    intraday = _feature_rows(
        INTRADAY_FEATURES_COLUMNS,
        [{"symbol": "META", "trade_date": day, "bar_ts": bar, "close": 273.2, "return_5m": -0.1}],
    )
    for base, rows in (
        (lake_layout.PROCESSED_FEATURES_DAILY, daily),
        (lake_layout.PROCESSED_FEATURES_INTRADAY, intraday),
    ):
        lake.put(f"{lake_layout.processed_date_prefix(base, day)}part-0.parquet", rows)

    loaded = cli.invoke(app, ["load", "features", "--json"])
    assert loaded.exit_code == 0, loaded.output
    summaries = [json.loads(line) for line in loaded.output.splitlines()]
    assert [(s["table"], s["rows_inserted"]) for s in summaries] == [
        ("daily_features", 2),
        ("intraday_features", 1),
    ]
    query = "SELECT symbol, sma_7 FROM daily_features ORDER BY symbol"
    rows = json.loads(cli.invoke(app, ["sql", query, "--json"]).output)
    assert rows == [{"symbol": "AAPL", "sma_7": None}, {"symbol": "TSLA", "sma_7": 680.5}]
    again = cli.invoke(app, ["load", "features"])
    assert again.exit_code == 0 and "nothing to load into intraday_features" in again.output
