"""A rename-free writer of date-partitioned parquet datasets in the processed zone.

    <base>/date=YYYY-MM-DD/part-00000.snappy.parquet      one object per date

Spark's own writer commits by renaming (FileOutputCommitter over s3a: LIST + COPY +
DELETE per file, two or three times), which on S3 costs far more than the data. Here the
rows are shuffled by date and sorted (`repartition` + `sortWithinPartitions`), and
`mapInArrow` hands each Spark task its dates in order: the task (in Spark's Python
workers, so on a cluster too) writes each date as ONE parquet object by a single PUT
under a fixed name. A PUT is atomic per object, so a date holds either its old file or
its new one, never half of one; a re-run writes the same name again.

The file is what readers always got: the dataset's contract columns and types
(`stocklake.schemas.arrow_schema`), the partition column `date` in the path only,
snappy, timestamps as int64 microseconds UTC.

Other objects (Spark's old part files, leftovers of a killed run) are listed once
before the write: those inside a date folder are deleted by the task right after that
date's PUT; on a full refresh, everything else under the base (dates not written this
run) is deleted once the write succeeded. A run killed at any point leaves every date
readable, and the next run repairs the rest.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stocklake.schemas import Columns, arrow_schema
from stocklake.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

PARTITION_COLUMN = "date"
OBJECT_NAME = "part-00000.snappy.parquet"
# What each task reports per date written (mapInArrow's output, collected by the driver).
RESULT_SCHEMA = "date string, rows long, key string"
DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
# PUTs in flight per task: a date's object is small, so a PUT is mostly waiting on S3
# (the boto3 client's connection pool holds 10).
PUT_THREADS = 8


@dataclass(frozen=True)
class Target:
    """Where a dataset lives: a bucket and the folder (key prefix) of its date partitions."""

    bucket: str
    base: str  # e.g. "processed/historical", without a trailing slash

    @classmethod
    def from_uri(cls, uri: str) -> Target:
        """From `s3a://bucket/base` (or s3://)."""
        scheme, _, rest = uri.partition("://")
        bucket, _, base = rest.partition("/")
        if scheme not in ("s3", "s3a") or not bucket or not base.strip("/"):
            raise ValueError(f"not an s3a://bucket/folder URI: {uri!r}")
        return cls(bucket, base.strip("/"))

    def date_folder(self, day: str) -> str:
        return f"{self.base}/{PARTITION_COLUMN}={day}/"

    def object_key(self, day: str) -> str:
        return self.date_folder(day) + OBJECT_NAME


@dataclass(frozen=True)
class Written:
    """What a write did: rows per date written, and how many old objects it removed."""

    rows_by_date: dict[str, int]
    deleted: int

    @property
    def dates(self) -> list[str]:
        return sorted(self.rows_by_date)

    @property
    def rows(self) -> int:
        return sum(self.rows_by_date.values())


def write_partitions(
    frame: DataFrame,
    settings: Settings,
    target: Target,
    columns: Columns,
    key: tuple[str, ...],
    *,
    full_refresh: bool,
    partitions: int | None = None,
) -> Written:
    """Write `frame` (with a `trade_date` column) as one parquet object per trade date.

    Only the dates present are replaced; on a full refresh every other object under the
    target is removed too (an empty frame then empties the dataset). `columns` is the
    file's contract, `key` the sort order inside a file.
    """
    from pyspark.sql import functions as F

    existing = list_objects(settings, target.bucket, target.base + "/")
    stale = _stale_by_date(target, existing)
    dated = frame.withColumn(PARTITION_COLUMN, F.date_format("trade_date", "yyyy-MM-dd"))
    count = partitions or frame.sparkSession.sparkContext.defaultParallelism
    writer = date_writer(settings, target, columns, stale)
    rows = (
        dated.repartition(max(1, count), PARTITION_COLUMN)
        .sortWithinPartitions(PARTITION_COLUMN, *key)
        .mapInArrow(writer, RESULT_SCHEMA)
        .collect()
    )
    rows_by_date = {row["date"]: int(row["rows"]) for row in rows}
    deleted = sum(len(stale.get(day, ())) for day in rows_by_date)
    if full_refresh:
        kept = {target.object_key(day) for day in rows_by_date}
        leftover = [name for name in existing if name not in kept]
        leftover = [name for name in leftover if _date_of(target, name) not in rows_by_date]
        delete_objects(settings, target.bucket, leftover)
        deleted += len(leftover)
    return Written(rows_by_date, deleted)


def _date_of(target: Target, key: str) -> str | None:
    """The date of a key inside a date folder of the target, else None."""
    prefix = f"{target.base}/{PARTITION_COLUMN}="
    if not key.startswith(prefix):
        return None
    day, slash, _ = key[len(prefix) :].partition("/")
    return day if slash else None


def _stale_by_date(target: Target, existing: list[str]) -> dict[str, list[str]]:
    """Per date folder, the objects other than the one this writer names."""
    stale: dict[str, list[str]] = defaultdict(list)
    for name in existing:
        day = _date_of(target, name)
        if day is not None and name != target.object_key(day):
            stale[day].append(name)
    return dict(stale)


def date_writer(
    settings: Settings, target: Target, columns: Columns, stale: dict[str, list[str]]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function mapInArrow runs in each task: its batches arrive sorted by date; each
    date's rows become one object; one result row per date written."""

    def write_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        client = _cached_client(settings)
        schema = arrow_schema(columns)
        names = [name for name, _ in columns]
        done: dict[str, int] = {}
        with ThreadPoolExecutor(PUT_THREADS) as pool:
            pending: list[Future] = []
            for day, pieces in _runs_by_date(batches):
                table = pa.Table.from_batches(pieces).select(names).cast(schema)
                pending.append(pool.submit(_replace_date, client, target, day, table, stale))
                done[day] = table.num_rows
                if len(pending) >= 4 * PUT_THREADS:  # bounded memory: wait for the oldest
                    pending.pop(0).result()
            for future in pending:
                future.result()
        yield pa.RecordBatch.from_pydict(
            {
                "date": list(done),
                "rows": list(done.values()),
                "key": [target.object_key(day) for day in done],
            },
            schema=pa.schema([("date", pa.string()), ("rows", pa.int64()), ("key", pa.string())]),
        )

    return write_task


def _replace_date(
    client, target: Target, day: str, table: pa.Table, stale: dict[str, list[str]]
) -> None:
    """One date: its object by one PUT, then the date folder's other objects deleted."""
    put_parquet(client, target.bucket, target.object_key(day), table)
    if stale.get(day):
        _delete_with(client, target.bucket, stale[day])


def _runs_by_date(
    batches: Iterator[pa.RecordBatch],
) -> Iterator[tuple[str, list[pa.RecordBatch]]]:
    """(date, its row slices) for each run of equal dates, in order (the input is sorted
    by date within the task, so each date is one run)."""
    import pyarrow.compute as pc

    current: str | None = None
    pending: list[pa.RecordBatch] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        values = batch.column(PARTITION_COLUMN)
        # Where the date changes inside the batch: the first row of each new run.
        changes = pc.indices_nonzero(pc.not_equal(values[1:], values[:-1])).to_pylist()
        start = 0
        for end in [index + 1 for index in changes] + [batch.num_rows]:
            day = values[start].as_py()
            if day != current and pending:
                yield current, pending  # type: ignore[misc]
                pending = []
            current = day
            pending.append(batch.slice(start, end - start))
            start = end
    if pending:
        yield current, pending  # type: ignore[misc]


def put_parquet(client, bucket: str, key: str, table: pa.Table) -> None:
    """One snappy parquet object by one PUT (atomic: readers see the old or the new)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    client.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def list_objects(settings: Settings, bucket: str, prefix: str) -> list[str]:
    """Every key under `prefix` (no delimiter: an emptied folder lists nothing)."""
    client = _cached_client(settings)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def delete_objects(settings: Settings, bucket: str, keys: list[str]) -> None:
    """Delete `keys` in batches of DeleteObjects; a key that failed raises."""
    if keys:
        _delete_with(_cached_client(settings), bucket, keys)


def _delete_with(client, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        chunk = [{"Key": name} for name in keys[start : start + DELETE_BATCH]]
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"could not delete {len(errors)} object(s) from {bucket}, e.g. "
                f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


_CLIENTS: dict[tuple[str, ...], object] = {}


def _cached_client(settings: Settings):
    """One boto3 client per endpoint and login in this process (Python workers are reused
    across tasks, and a client costs milliseconds to build)."""
    from stocklake.s3 import s3_client

    identity = (
        settings.s3_endpoint_url,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_region,
    )
    if identity not in _CLIENTS:
        _CLIENTS[identity] = s3_client(settings)
    return _CLIENTS[identity]
