"""How `stocklake sql` prints rows: an aligned table, psql-like vertical records, CSV or JSON.

Pure functions (columns and rows in, text out). A cell is never cut unless the user
asks with `max_width`; a table too wide for the terminal is the caller's to point out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rich.cells import cell_len

NULL = "NULL"
ELLIPSIS = "…"


class OutputFormat(StrEnum):
    table = "table"
    vertical = "vertical"
    csv = "csv"
    json = "json"


def cell_text(value: Any, max_width: int | None = None) -> str:
    """A value as one line of text; cut to `max_width` characters (ending in …) if given."""
    text = NULL if value is None else str(value).replace("\r", "\\r").replace("\n", "\\n")
    if max_width is not None and cell_len(text) > max_width:
        text = text[: max(max_width - 1, 0)] + ELLIPSIS
    return text


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * (width - cell_len(text))
    return fill + text if right else text + fill


def _numeric(rows: Sequence[Sequence[Any]], index: int) -> bool:
    values = [row[index] for row in rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    )


def render_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int | None = None
) -> list[str]:
    """psql's aligned format: a header, a rule, one line per row; numbers right-aligned."""
    headers = [cell_text(name, max_width) for name in columns]
    cells = [[cell_text(value, max_width) for value in row] for row in rows]
    widths = [
        max([cell_len(header)] + [cell_len(row[i]) for row in cells])
        for i, header in enumerate(headers)
    ]
    right = [_numeric(rows, i) for i in range(len(columns))]

    def line(parts: list[str], align: list[bool]) -> str:
        padded = (_pad(p, w, r) for p, w, r in zip(parts, widths, align, strict=True))
        return (" " + " | ".join(padded)).rstrip()

    centred = [name.center(width) for name, width in zip(headers, widths, strict=True)]
    lines = [line(centred, [False] * len(columns))]
    lines.append("-" + "-+-".join("-" * width for width in widths) + "-")
    lines.extend(line(row, right) for row in cells)
    return lines


def render_vertical(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    max_width: int | None = None,
    first_record: int = 1,
) -> list[str]:
    """psql's expanded format (`\\x`): a `-[ RECORD n ]-` header, then `column | value` lines."""
    name_width = max((cell_len(name) for name in columns), default=0)
    records = [
        [
            f"{_pad(name, name_width)} | {cell_text(value, max_width)}".rstrip()
            for name, value in zip(columns, row, strict=True)
        ]
        for row in rows
    ]
    # Every header as wide as the widest line, as psql draws them.
    width = max((cell_len(text) for body in records for text in body), default=0)
    lines: list[str] = []
    for number, body in enumerate(records, start=first_record):
        header = f"-[ RECORD {number} ]"
        lines.append(header + "-" * max(width - cell_len(header), 1))
        lines.extend(body)
    return lines


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header line; NULL is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else json_value(value) for value in row])
    return out.getvalue()


def json_value(value: Any) -> Any:
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def render_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A JSON array of one object per row (column name -> value)."""
    return json.dumps(
        [
            {name: json_value(value) for name, value in zip(columns, row, strict=True)}
            for row in rows
        ]
    )


def widest_line(lines: Sequence[str]) -> int:
    return max((cell_len(text) for text in lines), default=0)
