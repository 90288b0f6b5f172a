"""Reading the processed zone: list its partitions and read their parquet files."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import s3fs

from loaders.tables import WarehouseTable
from loaders.transform import (
    SourceFile,
    SourcePartition,
    conform,
    partitions_from_listing,
)
from stocklake.lake import s3_uri
from stocklake.schemas import arrow_schema

# Files fetched concurrently per round trip: enough to hide S3 latency, small
# enough that a large load never holds more than this many raw files at once.
FETCH_GROUP = 32
DECODE_THREADS = 4


def list_source_partitions(
    fs: s3fs.S3FileSystem, bucket: str, table: WarehouseTable
) -> list[SourcePartition]:
    """Every partition of the table's processed folder, oldest day first."""
    fs.invalidate_cache()
    root = f"{bucket}/{table.source_prefix}/"
    try:
        listing = fs.find(root, detail=True)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"lake bucket {bucket!r} is not reachable or does not exist (LAKE_BUCKET)"
        ) from None
    entries = [
        SourceFile(
            key=path[len(bucket) + 1 :],
            size=int(info.get("size") or 0),
            etag=str(info.get("ETag", "")).strip('"'),
            last_modified=info["LastModified"],
        )
        for path, info in listing.items()
        if info.get("type") != "directory"
    ]
    return partitions_from_listing(entries, table.source_prefix, windowed=_windowed(table))


def _windowed(table: WarehouseTable) -> bool:
    return "window_size" in table.source_names


@dataclass(frozen=True)
class SourceRows:
    """The rows of the chosen partitions in read order (oldest first), contract-typed."""

    table: pa.Table
    files: int


def read_partitions(
    fs: s3fs.S3FileSystem,
    bucket: str,
    partitions: list[SourcePartition],
    table: WarehouseTable,
) -> SourceRows:
    """Read every file; the first file that breaks the contract raises SchemaDriftError."""
    files = [file for partition in partitions for file in partition.files_oldest_first()]
    pieces: list[pa.Table] = []
    # Parquet decoding releases the GIL: a group's files are decoded side by side.
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        for start in range(0, len(files), FETCH_GROUP):
            group = files[start : start + FETCH_GROUP]
            contents = fs.cat([f"{bucket}/{file.key}" for file in group])
            bodies = [(file, contents.pop(f"{bucket}/{file.key}")) for file in group]
            pieces.extend(pool.map(lambda item: _decode(bucket, table, *item), bodies))
    if not pieces:
        return SourceRows(table=arrow_schema(table.source_columns).empty_table(), files=0)
    return SourceRows(table=pa.concat_tables(pieces), files=len(files))


def _decode(bucket: str, table: WarehouseTable, file: SourceFile, body: bytes) -> pa.Table:
    where = s3_uri(bucket, file.key)
    try:
        data = pq.read_table(pa.BufferReader(body))
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"{where} is not a readable parquet file: {error}") from None
    return conform(data, table.source_columns, where)
