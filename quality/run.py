"""Running the suite on one date of one dataset: read its partitions, run its declared
checks, return the result rows (QUALITY_RESULTS_COLUMNS). Storing them is the caller's
(the CLI and the DAGs hand them to `loaders.governance.record_quality`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from quality import checks, continuity, lake_read
from quality.checks import CheckContext
from quality.suite import SUITE, DatasetSpec
from stocklake import lake
from stocklake.governance import CheckName, CheckStatus, Dataset
from stocklake.s3 import lake_filesystem
from stocklake.schemas import Interval
from stocklake.settings import Settings

if TYPE_CHECKING:
    from s3fs import S3FileSystem

# (dataset, partition_name) -> the checksum stored by an earlier run, or None.
PreviousChecksum = Callable[[str, str], str | None]
# A raw bar without these cannot become a metric (the Spark job drops it too).
REQUIRED_BAR_COLUMNS = ("symbol", "ts", "interval", "open", "high", "low", "close", "volume")

ROW_CHECKS = {
    CheckName.KEYS_NOT_NULL: checks.keys_not_null,
    CheckName.KEYS_UNIQUE: checks.keys_unique,
    CheckName.DUPLICATE_TIMESTAMPS: checks.duplicate_timestamps,
    CheckName.OHLC_CONSISTENT: checks.ohlc_consistent,
    CheckName.VOLUME_NON_NEGATIVE: checks.volume_non_negative,
}


class QualityError(RuntimeError):
    """A check failed at severity fail; the message names each dataset, partition, check
    and observed value."""

    def __init__(self, failed: list[Mapping[str, Any]]) -> None:
        self.failed = failed
        super().__init__("quality checks failed: " + "; ".join(map(describe, failed)))


def describe(row: Mapping[str, Any]) -> str:
    """One result row in a line: dataset, partition, check, observed (and expected)."""
    text = (
        f"{row['dataset']} {row['partition_name']} {row['check_name']}: observed "
        f"{row['observed']}, expected {row['expected']}"
    )
    return text + (f" ({row['detail']})" if row["detail"] else "")


def failures(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of checks that failed at severity fail."""
    return [row for row in rows if row["status"] == CheckStatus.FAILED.value]


def raise_on_failures(rows: Iterable[Mapping[str, Any]]) -> None:
    """QualityError if any check failed at severity fail (a DAG task's stop)."""
    failed = failures(rows)
    if failed:
        raise QualityError(failed)


def expected_rows(spec: DatasetSpec, source: pd.DataFrame) -> tuple[int, str]:
    """How many rows the source partition gives this dataset, and what they are."""
    if spec.counted_from is not Dataset.RAW_BARS:
        return len(source), "rows"
    usable = source.dropna(subset=list(REQUIRED_BAR_COLUMNS))
    if spec.time_column == "bar_ts":  # intraday features: one row per 1-minute bar
        minutes = usable[usable["interval"] == Interval.M1.value]
        return len(minutes.drop_duplicates(["symbol", "ts"])), "1-minute bars"
    return usable["symbol"].nunique(), "symbol-days of bars"


def _only(frame: pd.DataFrame, interval: str | None) -> pd.DataFrame:
    return frame if interval is None else frame[frame["interval"] == interval]


def check_frame(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    ctx: CheckContext,
    *,
    last_seen: Mapping[str, date | None] | None = None,
    source: tuple[pd.DataFrame, str] | None = None,
    previous_checksum: str | None = None,
) -> list[dict[str, Any]]:
    """Every declared check of one partition's rows (pure: what the lake holds is given)."""
    rows = []
    for check in spec.checks:
        if check in ROW_CHECKS:
            rows.append(ROW_CHECKS[check](frame, spec, ctx))
        elif check is CheckName.MINUTE_CONTINUITY:
            minutes = _only(frame, spec.minute_interval)
            rows.append(continuity.minute_continuity(minutes, spec.time_column or "", ctx))
        elif check is CheckName.DAILY_CONTINUITY:
            days = _only(frame, spec.daily_interval)
            rows.append(continuity.daily_continuity(days, spec.time_column or "", ctx, last_seen))
        elif check is CheckName.ROW_COUNTS and source is not None:
            expected, what = expected_rows(spec, source[0])
            rows.append(checks.row_counts(expected, len(frame), source[1], ctx, what))
        elif check is CheckName.CHECKSUM:
            rows.append(checks.checksum(frame, spec, ctx, previous_checksum))
    return rows


def run_checks(
    settings: Settings,
    dataset: Dataset | str,
    day: date,
    run_id: str,
    previous_checksum: PreviousChecksum | None = None,
) -> list[dict[str, Any]]:
    """Run a dataset's declared checks on its partition(s) of `day` in the lake.

    `previous_checksum(dataset, partition_name)` gives the checksum an earlier run stored
    (`loaders.governance.previous_checksum`), so a re-run is compared with the last one.
    Raises `PartitionNotFoundError` naming a missing partition; a dataset with several
    partitions a day (the 15-minute and 1-hour windows) checks those that exist and raises
    only when none does (the day's first hourly window may not have closed yet).
    """
    spec = SUITE[Dataset(dataset)]
    fs = lake_filesystem(settings)
    fs.invalidate_cache()
    bucket = settings.lake_bucket
    prefixes = spec.prefixes(day)
    present = [p for p in prefixes if lake_read.partition_paths(fs, bucket, spec, p)]
    rows = []
    for prefix in present or prefixes[:1]:
        frame = lake_read.read_partition(fs, bucket, spec, prefix)
        ctx = CheckContext.of(settings, spec.dataset, prefix, run_id)
        rows += check_frame(
            frame,
            spec,
            ctx,
            last_seen=_last_seen(fs, bucket, spec, day, frame),
            source=_source(fs, bucket, spec, day),
            previous_checksum=previous_checksum(spec.dataset.value, prefix)
            if previous_checksum and CheckName.CHECKSUM in spec.checks
            else None,
        )
    return rows


def _last_seen(
    fs: S3FileSystem, bucket: str, spec: DatasetSpec, day: date, frame: pd.DataFrame
) -> dict[str, date | None] | None:
    if CheckName.DAILY_CONTINUITY not in spec.checks:
        return None
    symbols = set(_only(frame, spec.daily_interval)["symbol"].dropna())
    return lake_read.last_seen(fs, bucket, spec, day, symbols)


def _source(
    fs: S3FileSystem, bucket: str, spec: DatasetSpec, day: date
) -> tuple[pd.DataFrame, str] | None:
    """The partition this one's rows are counted from (empty if it is missing)."""
    if CheckName.ROW_COUNTS not in spec.checks or spec.counted_from is None:
        return None
    source = SUITE[spec.counted_from]
    (prefix,) = source.prefixes(day)
    paths = lake_read.partition_paths(fs, bucket, source, prefix)
    return lake_read.read_objects(fs, paths, source).to_pandas(), lake.s3_uri(bucket, prefix)
