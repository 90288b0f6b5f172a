"""The loader's pure steps: partition listing, selection, schema checks, null keys, dedup."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from loaders.tables import (
    DAILY_METRICS,
    MIGRATIONS,
    REALTIME_WINDOW_METRICS,
    WarehouseTable,
    pending_migrations,
)
from loaders.transform import (
    NonFiniteValueError,
    SchemaDriftError,
    SourceFile,
    SourceLayoutError,
    conform,
    dedupe_latest,
    latest_per_key_in_key_order,
    partitions_from_listing,
    reject_null_keys,
    schema_problems,
    select_partitions,
)
from loaders.warehouse import fold_loaded_partitions
from stocklake.schemas import DAILY_METRICS_COLUMNS, DAILY_METRICS_KEY, arrow_schema

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def file(key: str, etag: str = "e1", size: int = 10, at: datetime = T0) -> SourceFile:
    return SourceFile(key=key, size=size, etag=etag, last_modified=at)


def test_listing_groups_files_by_partition_and_skips_hidden_files() -> None:
    listing = [
        file("processed/historical/date=2024-01-03/part-1.parquet"),
        file("processed/historical/date=2024-01-02/part-0.parquet"),
        file("processed/historical/date=2024-01-02/part-1.parquet"),
        file("processed/historical/_SUCCESS"),
        file("processed/historical/date=2024-01-02/.part-0.parquet.crc"),
        file("processed/historical/_temporary/0/date=2024-01-04/part-9.parquet"),
    ]
    partitions = partitions_from_listing(listing, "processed/historical", windowed=False)
    assert [(p.name, p.day, len(p.files)) for p in partitions] == [
        ("date=2024-01-02", date(2024, 1, 2), 2),
        ("date=2024-01-03", date(2024, 1, 3), 1),
    ]


def test_windowed_listing_names_window_and_date() -> None:
    listing = [
        file("processed/realtime/window=1h/date=2024-01-02/a.parquet"),
        file("processed/realtime/window=15m/date=2024-01-02/a.parquet"),
    ]
    names = [p.name for p in partitions_from_listing(listing, "processed/realtime", True)]
    assert names == ["window=15m/date=2024-01-02", "window=1h/date=2024-01-02"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("processed/historical/stray.parquet", "is not in a processed/historical/date="),
        ("processed/historical/date=2024-01-02/notes.txt", "is not a .parquet file"),
        ("processed/historical/date=2024-13-02/a.parquet", "is not a date"),
        ("processed/historical/date=2024-01-02/x/a.parquet", "is not in a"),
    ],
)
def test_unexpected_objects_are_named(key: str, message: str) -> None:
    with pytest.raises(SourceLayoutError, match=message) as error:
        partitions_from_listing([file(key)], "processed/historical", windowed=False)
    assert key in str(error.value)


def test_unknown_window_size_is_an_error() -> None:
    with pytest.raises(SourceLayoutError, match="window '5m'"):
        partitions_from_listing(
            [file("processed/realtime/window=5m/date=2024-01-02/a.parquet")],
            "processed/realtime",
            windowed=True,
        )


def test_fingerprint_changes_when_a_file_is_rewritten_added_or_removed() -> None:
    def partition(*files: SourceFile):
        return partitions_from_listing(list(files), "processed/historical", False)[0]

    a = file("processed/historical/date=2024-01-02/a.parquet")
    b = file("processed/historical/date=2024-01-02/b.parquet")
    base = partition(a).fingerprint
    assert partition(a).fingerprint == base
    assert partition(file(a.key, etag="e2")).fingerprint != base
    assert partition(a, b).fingerprint != base
    assert partition(b).fingerprint != base


def test_selection_by_dates_and_by_what_was_loaded() -> None:
    listing = [file(f"processed/historical/date=2024-01-0{d}/a.parquet") for d in (2, 3, 4, 5)]
    partitions = partitions_from_listing(listing, "processed/historical", False)
    # Half-open [start, end), like Airflow's data intervals: the end date is not loaded.
    by_date = select_partitions(partitions, start=date(2024, 1, 3), end=date(2024, 1, 5))
    assert [p.name for p in by_date] == ["date=2024-01-03", "date=2024-01-04"]
    one = select_partitions(partitions, start=date(2024, 1, 3), end=date(2024, 1, 4))
    assert [p.name for p in one] == ["date=2024-01-03"]
    assert [p.name for p in select_partitions(partitions, end=date(2024, 1, 3))] == [
        "date=2024-01-02"
    ]
    loaded = {p.name: p.fingerprint for p in partitions[:2]}
    loaded["date=2024-01-04"] = "an older version"
    fresh = select_partitions(partitions, loaded=loaded)
    assert [p.name for p in fresh] == ["date=2024-01-04", "date=2024-01-05"]
    assert select_partitions(partitions, loaded={}) == partitions


def test_files_are_read_oldest_first() -> None:
    later = datetime(2024, 1, 3, tzinfo=UTC)
    listing = [
        file("processed/historical/date=2024-01-02/a.parquet", at=later),
        file("processed/historical/date=2024-01-02/b.parquet", at=T0),
    ]
    (partition,) = partitions_from_listing(listing, "processed/historical", False)
    assert [f.key[-9:] for f in partition.files_oldest_first()] == ["b.parquet", "a.parquet"]


def test_folding_audit_rows_keeps_the_latest_fingerprint() -> None:
    folded = fold_loaded_partitions(['{"date=a": "1", "date=b": "1"}', '{"date=a": "2"}', None])
    assert folded == {"date=a": "2", "date=b": "1"}


def daily_table(rows: int = 3) -> pa.Table:
    schema = arrow_schema(DAILY_METRICS_COLUMNS)
    columns = {field.name: pa.nulls(rows, field.type) for field in schema}
    columns["symbol"] = pa.array([f"S{i}" for i in range(rows)])
    columns["trade_date"] = pa.array([date(2024, 1, 2)] * rows, pa.date32())
    columns["daily_close"] = pa.array([float(i) for i in range(rows)])
    return pa.table(columns, schema=schema)


def test_conform_accepts_the_contract_and_lossless_variants() -> None:
    table = daily_table()
    assert conform(table, DAILY_METRICS_COLUMNS, "f") == table
    # Spark's INT96 timestamps read back as naive nanoseconds; int32 widens to long.
    variant = table.set_column(
        table.schema.get_field_index("first_bar_ts"),
        "first_bar_ts",
        pa.array([datetime(2024, 1, 2, 14, 30)] * 3, pa.timestamp("ns")),
    ).set_column(
        table.schema.get_field_index("daily_volume"),
        "daily_volume",
        pa.array([1, 2, 3], pa.int32()),
    )
    conformed = conform(
        variant.select(list(reversed(variant.column_names))), DAILY_METRICS_COLUMNS, "f"
    )
    assert conformed.schema == arrow_schema(DAILY_METRICS_COLUMNS)
    assert conformed.column("first_bar_ts")[0].as_py() == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert conformed.column("daily_volume").to_pylist() == [1, 2, 3]


def test_schema_problems_name_every_column() -> None:
    table = daily_table().drop_columns(["vwap"]).append_column("extra", pa.array([1, 2, 3]))
    table = table.set_column(
        table.schema.get_field_index("bar_count"), "bar_count", pa.array([1, 2, 3], pa.int64())
    )
    assert schema_problems(table.schema, DAILY_METRICS_COLUMNS) == [
        "column bar_count has type int64, expected int",
        "column vwap is missing (expected double)",
        "unexpected column extra (int64)",
    ]
    with pytest.raises(SchemaDriftError, match=r"^s3://b/k\.parquet: column bar_count"):
        conform(table, DAILY_METRICS_COLUMNS, "s3://b/k.parquet")


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_value_is_refused_naming_the_file_and_column(bad: float) -> None:
    table = daily_table()
    at = table.schema.get_field_index("vwap")
    table = table.set_column(at, "vwap", pa.array([1.0, bad, None], pa.float64()))
    with pytest.raises(NonFiniteValueError, match=r"^s3://b/k\.parquet: column vwap holds 1 "):
        conform(table, DAILY_METRICS_COLUMNS, "s3://b/k.parquet")


def test_null_keys_are_counted() -> None:
    table = daily_table(4)
    table = table.set_column(0, "symbol", pa.array(["A", None, "C", None]))
    table = table.set_column(1, "trade_date", pa.array([date(2024, 1, 2), None, None, None]))
    kept, rejected = reject_null_keys(table, DAILY_METRICS_KEY)
    assert (kept.column("symbol").to_pylist(), rejected) == (["A"], 3)


def test_dedupe_keeps_the_last_row_of_each_key_in_order() -> None:
    table = daily_table(5).set_column(0, "symbol", pa.array(["A", "B", "A", "C", "B"]))
    kept, dropped = dedupe_latest(table, DAILY_METRICS_KEY)
    assert dropped == 2
    assert kept.column("symbol").to_pylist() == ["A", "C", "B"]
    assert kept.column("daily_close").to_pylist() == [2.0, 3.0, 4.0]
    unique = daily_table(3)
    assert dedupe_latest(unique, DAILY_METRICS_KEY) == (unique, 0)


def test_latest_per_key_in_key_order_keeps_the_latest_rows_sorted_by_key() -> None:
    table = daily_table(6).set_column(0, "symbol", pa.array(["B", "A", "B", "C", "A", "B"]))
    days = [date(2024, 1, d) for d in (3, 2, 2, 2, 2, 3)]
    table = table.set_column(1, "trade_date", pa.array(days, pa.date32()))
    kept, dropped = latest_per_key_in_key_order(table, DAILY_METRICS_KEY)
    assert dropped == 2
    symbols, days = kept.column("symbol").to_pylist(), kept.column("trade_date").to_pylist()
    keys = list(zip(symbols, days, strict=True))
    assert keys == sorted(keys)
    # The same rows dedupe_latest keeps: the last of each key in table order.
    assert kept.column("daily_close").to_pylist() == [4.0, 2.0, 5.0, 3.0]
    latest, _ = dedupe_latest(table, DAILY_METRICS_KEY)
    assert sorted(latest.column("daily_close").to_pylist()) == [2.0, 3.0, 4.0, 5.0]
    empty = daily_table(0)
    assert latest_per_key_in_key_order(empty, DAILY_METRICS_KEY) == (empty, 0)


def test_table_definitions_follow_the_core_contracts() -> None:
    assert DAILY_METRICS.source_columns == DAILY_METRICS_COLUMNS
    assert DAILY_METRICS.column_names[-2:] == ("loaded_at", "run_id")
    assert REALTIME_WINDOW_METRICS.key == ("symbol", "window_size", "window_start")
    assert "trade_date" not in DAILY_METRICS.value_names
    with pytest.raises(ValueError, match="plain lower-case SQL identifier"):
        WarehouseTable(name="Bad Name", columns=(("a", "int"),), key=("a",))
    assert [m.version for m in pending_migrations(set())] == [m.version for m in MIGRATIONS]
    assert pending_migrations({m.version for m in MIGRATIONS}) == []
