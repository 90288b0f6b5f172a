"""The governance contracts, defined once: run metadata, ingestion fingerprints, data-quality
results and drift alerts (their columns, keys and allowed values).

The warehouse tables (`loaders/tables.py`), the quality suite (`quality/`), the CLI's
`stocklake runs` / `stocklake check` and the DAGs all derive from these lists.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from stocklake.schemas import Columns


class RunStatus(StrEnum):
    """How a pipeline run or one of its stages stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunKind(StrEnum):
    """Who started a pipeline run."""

    DAG = "dag"  # an Airflow DAG run; run_id is Airflow's
    CLI = "cli"  # a `stocklake` command; run_id is made by the CLI


class Severity(StrEnum):
    """What a failed check does: WARN records it and goes on, FAIL stops the run."""

    WARN = "warn"
    FAIL = "fail"


class CheckStatus(StrEnum):
    """One check's outcome on one partition."""

    PASSED = "passed"
    WARNED = "warned"  # failed at severity warn
    FAILED = "failed"  # failed at severity fail


class Dataset(StrEnum):
    """The datasets the quality suite declares checks for (`stocklake check DATASET`)."""

    RAW_BARS = "raw_bars"  # raw/historical/year=/month=/day=/
    RAW_TICKS = "raw_ticks"  # raw/realtime/year=/month=/day=/hour=/
    DAILY_METRICS = "daily_metrics"  # processed/historical/date=/ and its warehouse table
    DAILY_FEATURES = "daily_features"
    INTRADAY_FEATURES = "intraday_features"
    WINDOW_METRICS = "window_metrics"  # processed/realtime/window=/date=/


class CheckName(StrEnum):
    """Every check the quality suite knows; each dataset declares the ones it runs."""

    KEYS_NOT_NULL = "keys_not_null"
    KEYS_UNIQUE = "keys_unique"
    OHLC_CONSISTENT = "ohlc_consistent"  # low <= open, close <= high
    VOLUME_NON_NEGATIVE = "volume_non_negative"
    DUPLICATE_TIMESTAMPS = "duplicate_timestamps"  # per symbol
    MINUTE_CONTINUITY = "minute_continuity"  # 1-minute bars within the session's hours
    DAILY_CONTINUITY = "daily_continuity"  # daily bars over the exchange's trading days
    ROW_COUNTS = "row_counts"  # hop to hop: Kafka, raw, processed, warehouse
    CHECKSUM = "checksum"  # SHA256 of the partition's rows in key order


class DriftMetric(StrEnum):
    """What drift detection compares with the trailing window, per symbol and day."""

    VOLUME = "volume"
    RANGE = "range"  # (high - low) / close
    RETURN = "return"
    TICK_COUNT = "tick_count"


class Delivery(StrEnum):
    """Why a dataset was sent to Kafka (the `delivery` of an ingestion_metadata row)."""

    FIRST = "first"  # never sent before
    FORCED = "forced"  # sent and landed before; sent again with --force
    REDELIVERY = "redelivery"  # a scheduled DAG re-run (retry, backfill) sending it again


# One row per pipeline run (a DAG run, or a CLI command).
PIPELINE_RUNS_COLUMNS: Columns = (
    ("run_id", "string"),
    ("run_kind", "string"),  # RunKind
    ("pipeline", "string"),  # the DAG id, or the CLI command ("spark daily")
    ("logical_date", "timestamp"),
    ("interval_start", "timestamp"),
    ("interval_end", "timestamp"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("status", "string"),  # RunStatus
    ("error", "string"),
    ("host", "string"),
    ("pid", "long"),
)
PIPELINE_RUNS_KEY = ("run_id",)

# One row per stage of a run (a DAG task, or the one stage of a CLI command).
STAGE_RUNS_COLUMNS: Columns = (
    ("run_id", "string"),
    ("stage", "string"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("seconds", "double"),
    ("status", "string"),  # RunStatus
    ("records_in", "long"),
    ("records_out", "long"),
    ("records_quarantined", "long"),
    ("duplicates_dropped", "long"),
    ("objects_written", "long"),
    ("bytes_written", "long"),
    ("error", "string"),
    ("host", "string"),
    ("pid", "long"),
)
STAGE_RUNS_KEY = ("run_id", "stage")

# One row per dataset sent to Kafka by the historical producer.
INGESTION_METADATA_COLUMNS: Columns = (
    ("fingerprint", "string"),  # SHA256 of the dataset's description and canonical bytes
    ("run_id", "string"),
    ("delivery", "string"),  # Delivery
    ("source", "string"),
    ("symbols", "string"),  # comma-separated, sorted
    ("bar_interval", "string"),
    ("range_start", "date"),
    ("range_end", "date"),
    ("records", "long"),
    ("topic", "string"),
    ("offsets", "string"),  # JSON: {"partition": [first offset, last offset]}
    ("sent_at", "timestamp"),
)
INGESTION_METADATA_KEY = ("fingerprint", "run_id")

# One row per check per partition per run.
QUALITY_RESULTS_COLUMNS: Columns = (
    ("run_id", "string"),
    ("dataset", "string"),
    ("partition_name", "string"),  # the lake prefix, or "table date=YYYY-MM-DD", checked
    ("check_name", "string"),
    ("severity", "string"),  # Severity
    ("status", "string"),  # CheckStatus
    ("observed", "string"),
    ("expected", "string"),  # the expected value or the threshold
    ("detail", "string"),
    ("checked_at", "timestamp"),
)
QUALITY_RESULTS_KEY = ("run_id", "dataset", "partition_name", "check_name")

# One row per symbol, day and metric whose z-score passed the threshold.
DRIFT_ALERTS_COLUMNS: Columns = (
    ("run_id", "string"),
    ("dataset", "string"),
    ("symbol", "string"),
    ("trade_date", "date"),
    ("metric", "string"),  # DriftMetric
    ("observed", "double"),
    ("mean", "double"),
    ("stddev", "double"),
    ("zscore", "double"),
    ("threshold", "double"),
    ("window_days", "int"),
    ("created_at", "timestamp"),
)
DRIFT_ALERTS_KEY = ("run_id", "dataset", "symbol", "trade_date", "metric")


# ------------------------------------------------------------------ the canonical checksum

_NULL = "\\N"  # a null (and a float NaN: the warehouses may store either) in canonical text


def canonical_value(value: object) -> str:
    """One spelling per value, whichever reader produced it (pyarrow, psycopg, Snowflake).

    Integers (and integral Decimals) as digits, floats as their shortest round-trip repr,
    dates ISO, timestamps in UTC with microseconds, nulls and NaN as one null token.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else repr(float(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):  # pandas' Timestamp is a datetime too
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone; checksums need UTC")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def rows_checksum(rows: Iterable[Sequence[object]], key_positions: Sequence[int]) -> str:
    """SHA256 of rows in key order, canonical: the same rows in any order, from the lake or
    a warehouse, give the same hex digest; any changed value gives another.

    Each row is its values in the dataset's column order; rows are sorted by their key
    values, then by the whole row (ties between rows that repeat a key), all as canonical
    text. A row is its values joined by US (0x1f), rows end with a newline.
    """
    canonical = [tuple(canonical_value(value) for value in row) for row in rows]
    canonical.sort(key=lambda row: (tuple(row[i] for i in key_positions), row))
    digest = hashlib.sha256()
    for row in canonical:
        digest.update("\x1f".join(row).encode() + b"\n")
    return digest.hexdigest()


# ------------------------------------------------------------------ stage counts of a summary

_PRODUCE = {
    "records_in": ("records", "failed"),  # every record offered to Kafka
    "records_out": ("records",),  # acknowledged by the broker
    "bytes_written": ("bytes",),  # the values' bytes sent
}
_LAND = {
    "records_in": ("records_in",),
    "records_out": ("landed",),
    "records_quarantined": ("quarantined",),  # {reason: count}
    "objects_written": ("objects_written",),
    "bytes_written": ("bytes_written",),
}
_LOAD = {
    "records_in": ("rows_read",),
    "records_out": ("rows_inserted", "rows_updated"),  # rows the MERGE changed
    "records_quarantined": ("rows_rejected",),  # a null key: never loaded
    "duplicates_dropped": ("rows_duplicate",),
}
# Per kind of stage: stage_runs count -> the summary keys it adds up (a list counts its
# items, a {name: number} mapping its numbers). Keys a summary lacks leave the count empty.
# The CLI's commands and the DAGs' tasks both read their summaries through this one table.
STAGE_SUMMARY_COUNTS: dict[str, dict[str, tuple[str, ...]]] = {
    "produce": _PRODUCE,
    "land": _LAND,
    "spark daily": {
        "records_in": ("input_rows",),
        "records_out": ("output_rows",),
        "duplicates_dropped": ("duplicates_dropped",),
        "objects_written": ("partitions_written",),  # one parquet object per date
    },
    "spark features": {
        "records_in": ("history_rows_read",),
        "records_out": ("daily_rows", "intraday_rows"),
        "objects_written": ("daily_dates_written", "intraday_dates_written"),
    },
    "spark stream": {
        "records_in": ("input_rows",),
        "records_out": ("output_rows",),
        "duplicates_dropped": ("duplicate_rows_dropped",),
        "objects_written": ("partitions_written",),
    },
    "load": _LOAD,
    "train": {"records_in": ("rows",)},  # a model card's {part: rows}
    # Checks, drift, sensors and summaries: their results are quality/drift rows or logs.
    "none": {},
}


def stage_kind(command: str) -> str:
    """The STAGE_SUMMARY_COUNTS kind of a CLI command ("land historical" -> "land")."""
    if command in STAGE_SUMMARY_COUNTS:
        return command
    first = command.split(" ", 1)[0]
    if first in ("produce", "land", "load", "train"):
        return first
    if first in ("check", "drift"):
        return "none"
    raise KeyError(f"no stage counts declared for {command!r} (STAGE_SUMMARY_COUNTS)")


def _figure(value: object) -> int | None:
    """A summary value as a count: a number, a list's length, a mapping's numbers summed."""
    from collections.abc import Mapping

    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, Mapping):
        numbers = [_figure(item) for item in value.values()]
        return sum(number for number in numbers if number is not None)
    if isinstance(value, list | tuple | set):
        return len(value)
    return int(value)  # type: ignore[call-overload]


def summary_counts(kind: str, summary: object) -> dict[str, int]:
    """The stage counts a stage's summary gives (pure): only those the summary has."""
    from collections.abc import Mapping

    mapping = STAGE_SUMMARY_COUNTS[kind]
    if not isinstance(summary, Mapping):
        return {}
    counts = {}
    for count, keys in mapping.items():
        figures = [_figure(summary[key]) for key in keys if key in summary]
        present = [figure for figure in figures if figure is not None]
        if present:
            counts[count] = sum(present)
    return counts
