"""Reading the lake for the quality suite and drift: a date's partition, the dates present,
the symbols of earlier partitions. Moves data only; the checks are elsewhere.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from quality.continuity import previous_trading_day
from quality.suite import DatasetSpec
from stocklake import lake
from stocklake.schemas import arrow_schema

if TYPE_CHECKING:
    from s3fs import S3FileSystem


class PartitionNotFoundError(FileNotFoundError):
    """A partition the suite was asked to check is not in the lake."""


def _files(fs: S3FileSystem, bucket: str, prefix: str, suffix: str) -> list[str]:
    try:
        return sorted(path for path in fs.find(f"{bucket}/{prefix}") if path.endswith(suffix))
    except FileNotFoundError:
        return []


def read_objects(fs: S3FileSystem, paths: Iterable[str], spec: DatasetSpec) -> pa.Table:
    """The rows of some raw (JSON lines) or processed (parquet) objects, in the contract's
    arrow schema."""
    schema = arrow_schema(spec.columns)
    paths = list(paths)
    tables = []
    # One concurrent fetch (s3fs gathers the GETs), then parsed in order.
    contents = fs.cat(paths) if paths else {}
    for path in paths:
        data = io.BytesIO(contents[path])
        if spec.raw:
            options = pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            )
            tables.append(pa_json.read_json(data, parse_options=options))
        else:
            tables.append(pq.read_table(data).select(list(spec.column_names)).cast(schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def partition_paths(fs: S3FileSystem, bucket: str, spec: DatasetSpec, prefix: str) -> list[str]:
    return _files(fs, bucket, prefix, lake.RAW_SUFFIX if spec.raw else ".parquet")


def read_partition(fs: S3FileSystem, bucket: str, spec: DatasetSpec, prefix: str) -> pd.DataFrame:
    """One partition's rows as a frame; a missing partition is an error naming it."""
    paths = partition_paths(fs, bucket, spec, prefix)
    if not paths:
        raise PartitionNotFoundError(
            f"no {spec.dataset} partition at {lake.s3_uri(bucket, prefix)}: nothing to check "
            "(write it first, or check a date that has one)"
        )
    return read_objects(fs, paths, spec).to_pandas()


def partition_dates(fs: S3FileSystem, bucket: str, spec: DatasetSpec) -> list[date]:
    """The dates that have a partition of this dataset, from one listing, in order."""
    base = spec.prefixes(date(2000, 1, 1))[0].split("year=")[0].split("date=")[0]
    try:
        folders = fs.find(f"{bucket}/{base}", withdirs=True)
    except FileNotFoundError:
        return []
    dates = {lake.partition_date(path) for path in folders}
    return sorted(day for day in dates if day is not None)


def symbols_on(fs: S3FileSystem, bucket: str, spec: DatasetSpec, day: date) -> set[str]:
    """The symbols with rows on `day` (of the daily interval, for raw bars)."""
    paths = [
        path for prefix in spec.prefixes(day) for path in partition_paths(fs, bucket, spec, prefix)
    ]
    if not paths:
        return set()
    table = read_objects(fs, paths, spec)
    if spec.daily_interval is not None:
        table = table.filter(pa.compute.equal(table["interval"], spec.daily_interval))
    return set(table["symbol"].to_pylist())


def last_seen(
    fs: S3FileSystem, bucket: str, spec: DatasetSpec, day: date, symbols: set[str]
) -> dict[str, date | None]:
    """Each symbol's latest date with a row before `day` (None: `day` is its first).

    The previous trading day's partition answers for most symbols; only the others walk
    back through the earlier partitions (one listing), newest first, until each is found.
    """
    found: dict[str, date | None] = dict.fromkeys(symbols)
    previous = previous_trading_day(day)
    for symbol in symbols & symbols_on(fs, bucket, spec, previous):
        found[symbol] = previous
    if all(found.values()):
        return found
    listed = partition_dates(fs, bucket, spec)
    earlier = sorted((d for d in listed if d < day and d != previous), reverse=True)
    for seen in earlier:
        wanted = {symbol for symbol, when in found.items() if when is None}
        if not wanted:
            break
        for symbol in wanted & symbols_on(fs, bucket, spec, seen):
            found[symbol] = seen
    return found
