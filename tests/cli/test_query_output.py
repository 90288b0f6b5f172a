"""`stocklake sql`'s output formats, on rows made here (no warehouse needed)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from cli.query_output import render_csv, render_json, render_table, render_vertical

LONG_ID = "trade_" + "x" * 70
COLUMNS = ["run_id", "rows_read", "close"]
ROWS = [(LONG_ID, 1234, 3733.123456789), ("b", None, Decimal("0.5"))]


def test_table_is_aligned_and_never_cuts_a_cell() -> None:
    lines = render_table(COLUMNS, ROWS)
    assert "…" not in "\n".join(lines)
    assert lines[0].split("|")[0].strip() == "run_id"
    assert lines[1] == "-" + "-+-".join("-" * w for w in (len(LONG_ID), 9, 14)) + "-"
    assert lines[2] == f" {LONG_ID} |      1234 | 3733.123456789"
    # Numbers are right-aligned; NULL is spelled out.
    assert lines[3] == " b" + " " * (len(LONG_ID) - 1) + " |      NULL |            0.5"
    assert len({line.index("|") for line in lines if "|" in line}) == 1


def test_max_width_cuts_cells_with_an_ellipsis() -> None:
    lines = render_table(COLUMNS, ROWS, max_width=8)
    assert lines[2] == " trade_x… |     1234 | 3733.12…"
    assert max(map(len, lines)) < len(LONG_ID)


def test_vertical_is_one_column_value_line_each_under_a_record_header() -> None:
    lines = render_vertical(
        ["symbol", "trade_date"], [("AAPL", date(2020, 12, 31)), ("TSLA", None)]
    )
    assert lines == [
        "-[ RECORD 1 ]----------",
        "symbol     | AAPL",
        "trade_date | 2020-12-31",
        "-[ RECORD 2 ]----------",
        "symbol     | TSLA",
        "trade_date | NULL",
    ]
    wide = render_vertical(COLUMNS, ROWS[:1])
    assert wide[1] == f"run_id    | {LONG_ID}"
    assert wide[0].startswith("-[ RECORD 1 ]-") and len(wide[0]) == len(wide[1])


def test_csv_and_json_keep_every_value_whole() -> None:
    rows = [(1, None), ("a,b", date(2020, 12, 31))]
    assert render_csv(["n", "when"], rows) == 'n,when\n1,\n"a,b",2020-12-31\n'
    assert json.loads(render_json(["n", "when"], rows)) == [
        {"n": 1, "when": None},
        {"n": "a,b", "when": "2020-12-31"},
    ]
