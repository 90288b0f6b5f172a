"""Pure steps of a load: which partitions, is the schema right, which rows to stage.

Nothing here touches S3 or a warehouse; `loaders.load` moves the data.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stocklake.schemas import COLUMN_TYPES, WINDOW_SIZES, Columns, arrow_schema, arrow_type


class SchemaDriftError(ValueError):
    """A processed file's columns differ from the contract; names the file and the column."""


class NonFiniteValueError(ValueError):
    """A processed file holds inf or NaN; names the file, the column and how many rows."""


class SourceLayoutError(ValueError):
    """An object in the processed zone sits where no partition is expected."""


@dataclass(frozen=True, order=True)
class SourceFile:
    key: str
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class SourcePartition:
    """One partition folder of the processed zone: `date=2024-01-02`, `window=1h/date=...`."""

    name: str
    day: date
    files: tuple[SourceFile, ...]

    @property
    def fingerprint(self) -> str:
        """Changes whenever a file of the partition is added, removed or rewritten."""
        digest = hashlib.sha256()
        for file in sorted(self.files, key=lambda f: f.key):
            digest.update(f"{file.key}\0{file.etag}\0{file.size}\n".encode())
        return digest.hexdigest()[:32]

    def files_oldest_first(self) -> list[SourceFile]:
        """Read order, so later rows are the newer ones when keys repeat."""
        return sorted(self.files, key=lambda f: (f.last_modified, f.key))


_PARTITION = re.compile(
    r"^(?:window=(?P<window>[^/]+)/)?date=(?P<date>\d{4}-\d{2}-\d{2})/(?P<file>.+)$"
)


def partitions_from_listing(
    entries: list[SourceFile], source_prefix: str, windowed: bool
) -> list[SourcePartition]:
    """Group a recursive listing of `source_prefix` into partitions, oldest day first.

    Files and folders starting with `_` or `.` (Spark's `_SUCCESS`, `_temporary/`,
    checksums) are not data; any other object outside a partition folder is an error.
    """
    prefix = source_prefix.rstrip("/") + "/"
    grouped: dict[str, list[SourceFile]] = {}
    days: dict[str, date] = {}
    for entry in entries:
        if not entry.key.startswith(prefix):
            raise SourceLayoutError(f"{entry.key} is not under {prefix}")
        relative = entry.key[len(prefix) :]
        if any(part.startswith(("_", ".")) for part in relative.split("/")):
            continue
        match = _PARTITION.match(relative)
        if not match or "/" in match["file"] or bool(match["window"]) != windowed:
            layout = "window=<size>/date=YYYY-MM-DD/" if windowed else "date=YYYY-MM-DD/"
            raise SourceLayoutError(
                f"{entry.key} is not in a {prefix}{layout} folder; move or delete it"
            )
        if windowed and match["window"] not in WINDOW_SIZES:
            raise SourceLayoutError(
                f"{entry.key}: window {match['window']!r} is not one of {sorted(WINDOW_SIZES)}"
            )
        if not match["file"].endswith(".parquet"):
            raise SourceLayoutError(f"{entry.key} is not a .parquet file")
        name = relative[: -len(match["file"]) - 1]
        try:
            days[name] = date.fromisoformat(match["date"])
        except ValueError:
            raise SourceLayoutError(f"{entry.key}: {match['date']} is not a date") from None
        grouped.setdefault(name, []).append(entry)
    partitions = [
        SourcePartition(name=name, day=days[name], files=tuple(sorted(files)))
        for name, files in grouped.items()
    ]
    return sorted(partitions, key=lambda p: (p.day, p.name))


def select_partitions(
    partitions: list[SourcePartition],
    *,
    start: date | None = None,
    end: date | None = None,
    loaded: dict[str, str] | None = None,
) -> list[SourcePartition]:
    """Partitions to load: dated within [start, end) (half-open: `end` itself is not
    included), and when `loaded` is given (incremental), only those never loaded or
    changed since (their fingerprint differs)."""
    chosen = []
    for partition in partitions:
        if start is not None and partition.day < start:
            continue
        if end is not None and partition.day >= end:
            continue
        if loaded is not None and loaded.get(partition.name) == partition.fingerprint:
            continue
        chosen.append(partition)
    return chosen


# Narrower integers a file may hold for a kind: widened losslessly when read.
_NARROWER = {
    "int": (pa.int8(), pa.int16()),
    "long": (pa.int8(), pa.int16(), pa.int32()),
}


def _accepts(found: pa.DataType, kind: str) -> bool:
    """Whether a file's arrow type carries a contract kind exactly (lossless widening only)."""
    if kind not in COLUMN_TYPES:
        raise ValueError(f"unknown column kind {kind!r}")
    if kind == "string":
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if kind == "date":
        return pa.types.is_date(found)
    if kind == "timestamp":
        # Spark writes instants: INT96 reads back without a zone, TIMESTAMP_MICROS as UTC.
        return pa.types.is_timestamp(found)
    return found == arrow_type(kind) or found in _NARROWER.get(kind, ())


def schema_problems(schema: pa.Schema, columns: Columns) -> list[str]:
    """Every difference between a file's schema and the contract, one line each."""
    expected = dict(columns)
    problems = []
    for name, kind in columns:
        if name not in schema.names:
            problems.append(f"column {name} is missing (expected {kind})")
        elif not _accepts(schema.field(name).type, kind):
            problems.append(f"column {name} has type {schema.field(name).type}, expected {kind}")
    for name in schema.names:
        if name not in expected:
            problems.append(f"unexpected column {name} ({schema.field(name).type})")
    if len(set(schema.names)) != len(schema.names):
        problems.append("a column name appears twice")
    return problems


def conform(table: pa.Table, columns: Columns, where: str) -> pa.Table:
    """The table in the contract's column order and exact types, or SchemaDriftError."""
    problems = schema_problems(table.schema, columns)
    if problems:
        raise SchemaDriftError(f"{where}: " + "; ".join(problems) + "; nothing was loaded")
    target = arrow_schema(columns)
    arrays = []
    for field in target:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise SchemaDriftError(
                    f"{where}: column {field.name} cannot be read as {field.type}: {error}"
                ) from None
        arrays.append(column)
    conformed = pa.Table.from_arrays(arrays, schema=target)
    reject_non_finite(conformed, where)
    return conformed


def reject_non_finite(table: pa.Table, where: str) -> None:
    """NonFiniteValueError when a floating-point column holds inf or NaN (null is fine).

    The Spark jobs hold such rows back; one here means the file was written another way.
    """
    for field in table.schema:
        if not pa.types.is_floating(field.type):
            continue
        column = table.column(field.name)
        bad = pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0
        if bad:
            raise NonFiniteValueError(
                f"{where}: column {field.name} holds {bad} value(s) that are inf or NaN; "
                "nothing was loaded (rewrite the file with the Spark job, or delete it)"
            )


def reject_null_keys(table: pa.Table, key: tuple[str, ...]) -> tuple[pa.Table, int]:
    """Rows whose key columns are all set, and how many were rejected."""
    valid = None
    for name in key:
        column_valid = pc.is_valid(table.column(name))
        valid = column_valid if valid is None else pc.and_(valid, column_valid)
    if valid is None:
        return table, 0
    kept = table.filter(valid)
    return kept, table.num_rows - kept.num_rows


def dedupe_latest(table: pa.Table, key: tuple[str, ...]) -> tuple[pa.Table, int]:
    """One row per key, the last one in table order winning; and how many were dropped.

    Callers order rows oldest first (partition, then file age, then row order), so the
    newest version of a key wins, and the stage never holds a key twice (Snowflake's
    MERGE refuses non-deterministic sources; PostgreSQL's refuses any repeat).
    """
    if table.num_rows == 0:
        return table, 0
    keys = table.select(list(key))
    # Repeats are rare: a cheap distinct count settles the common case.
    if keys.group_by(list(key)).aggregate([]).num_rows == table.num_rows:
        return table, 0
    positions = pa.array(np.arange(table.num_rows, dtype=np.int64))
    keyed = keys.append_column("__position", positions)
    last = keyed.group_by(list(key)).aggregate([("__position", "max")])
    keep = pc.sort_indices(last.column("__position_max"))
    kept = table.take(pc.take(last.column("__position_max"), keep))
    return kept, table.num_rows - kept.num_rows


def latest_per_key_in_key_order(table: pa.Table, key: tuple[str, ...]) -> tuple[pa.Table, int]:
    """One row per key, the last one in table order winning, the rows sorted by key; and
    how many were dropped.

    The same rows as `dedupe_latest`, from one stable sort instead of a group-by: the
    warehouse then meets the rows in its primary key's order, so a MERGE's index
    insertions and page writes go forward through the table instead of at random.
    Null keys must have been rejected first (`reject_null_keys`).
    """
    count = table.num_rows
    if count == 0:
        return table, 0
    keys = table.select(list(key))
    # Stable: among rows of one key, table order is kept, so the last is the latest.
    order = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in key])
    ordered = keys.take(order)
    last = np.ones(count, dtype=bool)
    if count > 1:
        same = np.ones(count - 1, dtype=bool)
        for name in key:
            column = ordered.column(name)
            equal = pc.equal(column.slice(0, count - 1), column.slice(1))
            same &= equal.to_numpy(zero_copy_only=False)
        last[:-1] = ~same
    kept = table.take(order.filter(pa.array(last)))
    return kept, count - kept.num_rows
