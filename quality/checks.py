"""The row-level checks, pure: one partition's rows (a pandas frame) in, one result row out.

Each check returns a dict with exactly `QUALITY_RESULTS_COLUMNS`, made by
`CheckContext.row`: the severity comes from the settings (QUALITY_FAIL_CHECKS), the
status from the severity and whether the check passed.

Hand-written pandas, not pandera: these are four vectorised expressions (null keys,
duplicate keys, OHLC order, negative volume) whose result must be one row per check with
a count and a few example keys; pandera's lazy validation reports failure cases per
column and per check, which would be translated back into those rows (more code than the
checks), and importing `pandera.pandas` costs 1.0-1.5 s on top of pandas' 0.5 s in every
DAG task and `stocklake check` (measured with pandera 0.35). The rest of the suite
(continuity over the exchange calendar, row counts across hops, checksums, drift) needs
other partitions and the calendar, which a frame schema does not express.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from quality.suite import DatasetSpec
from stocklake.governance import (
    QUALITY_RESULTS_COLUMNS,
    CheckName,
    CheckStatus,
    Dataset,
    Severity,
    rows_checksum,
)
from stocklake.schemas import arrow_schema
from stocklake.settings import Settings

EXAMPLES = 5  # example keys named in a failed check's detail


@dataclass(frozen=True)
class CheckContext:
    """Who runs the checks on which partition, and which checks fail rather than warn."""

    run_id: str
    dataset: Dataset
    partition_name: str
    fail_checks: Collection[str]
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(
        cls, settings: Settings, dataset: Dataset, partition_name: str, run_id: str
    ) -> CheckContext:
        return cls(run_id, dataset, partition_name, settings.quality_fail_check_names)

    def severity(self, check: CheckName) -> Severity:
        return Severity.FAIL if check.value in self.fail_checks else Severity.WARN

    def row(
        self, check: CheckName, passed: bool, observed: object, expected: object, detail: str = ""
    ) -> dict[str, Any]:
        """One QUALITY_RESULTS_COLUMNS row."""
        severity = self.severity(check)
        if passed:
            status = CheckStatus.PASSED
        else:
            status = CheckStatus.FAILED if severity is Severity.FAIL else CheckStatus.WARNED
        row = {
            "run_id": self.run_id,
            "dataset": self.dataset.value,
            "partition_name": self.partition_name,
            "check_name": check.value,
            "severity": severity.value,
            "status": status.value,
            "observed": str(observed),
            "expected": str(expected),
            "detail": detail,
            "checked_at": self.checked_at,
        }
        assert tuple(row) == tuple(name for name, _ in QUALITY_RESULTS_COLUMNS)
        return row


def _examples(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    shown = frame.loc[:, list(columns)].head(EXAMPLES).astype(str)
    return "; ".join(", ".join(values) for values in shown.itertuples(index=False, name=None))


def keys_not_null(frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext) -> dict[str, Any]:
    """No row has a null in a key column."""
    nulls = frame.loc[:, list(spec.key)].isna()
    bad = frame[nulls.any(axis=1)]
    per_column = {name: int(count) for name, count in nulls.sum().items() if count}
    detail = f"null keys per column: {per_column}" if per_column else ""
    return ctx.row(CheckName.KEYS_NOT_NULL, bad.empty, len(bad), 0, detail)


def _repeated_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    return frame[frame.duplicated(list(key), keep=False)].sort_values(list(key))


def keys_unique(frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext) -> dict[str, Any]:
    """No key appears twice (rows beyond the first of each key are counted)."""
    extra = int(frame.duplicated(list(spec.key)).sum())
    detail = f"repeated {spec.key}: {_examples(_repeated_keys(frame, spec.key), spec.key)}"
    return ctx.row(CheckName.KEYS_UNIQUE, extra == 0, extra, 0, detail if extra else "")


def duplicate_timestamps(
    frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext
) -> dict[str, Any]:
    """No symbol has two rows at the same time (and interval, sequence: the raw key)."""
    extra = int(frame.duplicated(list(spec.key)).sum())
    repeated = _repeated_keys(frame, spec.key).drop_duplicates(list(spec.key))
    detail = f"{len(repeated)} {spec.key} repeated: {_examples(repeated, spec.key)}"
    return ctx.row(CheckName.DUPLICATE_TIMESTAMPS, extra == 0, extra, 0, detail if extra else "")


def ohlc_consistent(frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext) -> dict[str, Any]:
    """low <= open, close <= high on every row."""
    assert spec.ohlc is not None, f"{spec.dataset} has no OHLC columns"
    names = spec.ohlc
    o, h, low, c = (frame[name] for name in (names.open, names.high, names.low, names.close))
    bad = frame[(low > o) | (low > c) | (h < o) | (h < c) | (low > h)]
    detail = f"low > open/close or high < open/close at {_examples(bad, spec.key)}"
    return ctx.row(CheckName.OHLC_CONSISTENT, bad.empty, len(bad), 0, "" if bad.empty else detail)


def volume_non_negative(
    frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext
) -> dict[str, Any]:
    """The volume column is never below 0."""
    assert spec.volume is not None, f"{spec.dataset} has no volume column"
    bad = frame[frame[spec.volume] < 0]
    detail = f"{spec.volume} < 0 at {_examples(bad, spec.key)}"
    return ctx.row(
        CheckName.VOLUME_NON_NEGATIVE, bad.empty, len(bad), 0, "" if bad.empty else detail
    )


def row_counts(
    expected: int, observed: int, source: str, ctx: CheckContext, what: str = "rows"
) -> dict[str, Any]:
    """The partition holds as many rows as its source gives (`what` in `source`)."""
    detail = f"{expected} {what} in {source}, {observed} rows here"
    return ctx.row(CheckName.ROW_COUNTS, expected == observed, observed, expected, detail)


def partition_checksum(frame: pd.DataFrame, spec: DatasetSpec) -> str:
    """The canonical SHA256 of the partition's rows (the core's `rows_checksum`)."""
    # Through the contract's arrow schema: an int column with nulls that pandas made float
    # hashes as the integers the warehouse holds, timestamps as UTC microseconds.
    table = pa.Table.from_pandas(
        frame.loc[:, list(spec.column_names)],
        schema=arrow_schema(spec.columns),
        preserve_index=False,
    )
    columns = [column.to_pylist() for column in table.columns]
    return rows_checksum(zip(*columns, strict=True), spec.key_positions)


def checksum(
    frame: pd.DataFrame, spec: DatasetSpec, ctx: CheckContext, previous: str | None
) -> dict[str, Any]:
    """The partition's checksum; it passes unless it differs from the last one stored."""
    observed = partition_checksum(frame, spec)
    if previous is None:
        return ctx.row(CheckName.CHECKSUM, True, observed, "", "no earlier checksum stored")
    same = observed == previous
    detail = "same rows as the last run" if same else "rows changed since the last run"
    return ctx.row(CheckName.CHECKSUM, same, observed, previous, detail)
