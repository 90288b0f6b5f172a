"""The DAGs' data-quality and drift steps: run the suite (`quality/`, and the warehouse
side in `loaders.checks`), store the results (`loaders.governance`), log them as a table,
and stop the task on a check failed at severity fail (or on drift with DRIFT_SEVERITY=fail).

Called inside tasks only: the stage imports are inside the functions, so parsing a DAG
that imports this module stays light.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from dags.common import log, settings

QUALITY_COLUMNS = (
    ("dataset", "dataset"),
    ("partition_name", "partition"),
    ("check_name", "check"),
    ("severity", "severity"),
    ("status", "status"),
    ("observed", "observed"),
    ("expected", "expected"),
)
DRIFT_COLUMNS = (
    ("dataset", "dataset"),
    ("symbol", "symbol"),
    ("trade_date", "date"),
    ("metric", "metric"),
    ("observed", "observed"),
    ("mean", "mean"),
    ("stddev", "stddev"),
    ("zscore", "z"),
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = "" if value is None else str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def as_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as a fixed-width text table (for the task log)."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    heads = [head for _, head in columns]
    widths = [max(len(text) for text in column) for column in zip(heads, *cells, strict=False)]
    lines = [heads, ["-" * width for width in widths], *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def settle(rows: list[dict[str, Any]], other_failures: Iterable[str] = ()) -> dict[str, Any]:
    """Store check results, log them as a table, and fail on a check failed at severity
    fail (QualityError naming dataset, partition, check and observed value).

    `other_failures` are findings of checks that are not quality_results rows (the load's
    hop-to-hop report); they fail the task too. Returns the task's summary.
    """
    from loaders.governance import quality_summary, record_quality
    from quality import QualityError, failures

    if rows:
        record_quality(settings(), rows)
    counts = quality_summary(rows)
    log.info("%d checks: %s\n%s", len(rows), counts, as_table(rows, QUALITY_COLUMNS))
    failed, others = failures(rows), list(other_failures)
    if failed and others:
        raise QualityError(failed) from AssertionError("; ".join(others))
    if failed:
        raise QualityError(failed)
    if others:
        raise AssertionError("data checks failed: " + "; ".join(others))
    return {
        "checks": len(rows),
        **counts,
        "partitions": sorted({row["partition_name"] for row in rows}),
    }


def check_lake(
    datasets: Sequence[str], dates: Sequence[str], run_id: str, *, missing_ok: Sequence[str] = ()
) -> dict[str, Any]:
    """Run the suite on each dataset's partitions of each date, then `settle` the results.

    A missing partition fails the task (PartitionNotFoundError names it), except for the
    datasets in `missing_ok` (written only when their input exists): those are logged.
    A checksum is compared with the one an earlier run stored for the same partition.
    """
    from loaders.governance import previous_checksum
    from quality import PartitionNotFoundError, run_checks

    def stored(dataset: str, partition: str) -> str | None:
        return previous_checksum(settings(), dataset, partition, before_run=run_id)

    rows: list[dict[str, Any]] = []
    for dataset in datasets:
        for day in dates:
            try:
                rows += run_checks(settings(), dataset, date.fromisoformat(day), run_id, stored)
            except PartitionNotFoundError as missing:
                if dataset not in missing_ok:
                    raise
                log.warning("%s %s not checked: %s", dataset, day, missing)
    return settle(rows)


def check_warehouse(datasets: Sequence[str], dates: Sequence[str], run_id: str) -> dict[str, Any]:
    """The loaded tables' checks per date: the load's hop-to-hop report (raw, processed and
    warehouse counts, keys, OHLC, volume) and the suite's warehouse side (processed ->
    warehouse row counts and checksums), then `settle`."""
    from loaders.checks import check_daily, warehouse_quality

    report = check_daily(settings(), dates)
    rows = [
        row
        for dataset in datasets
        for day in dates
        for row in warehouse_quality(settings(), dataset, date.fromisoformat(day), run_id)
    ]
    return {**settle(rows, report.failures), "days": report.as_dict()["days"]}


def check_drift(dates: Sequence[str], run_id: str) -> dict[str, Any]:
    """Drift alerts of each date stored and logged; DriftError with DRIFT_SEVERITY=fail."""
    from loaders.governance import record_drift
    from quality import drift_alerts, raise_on_drift

    days = [date.fromisoformat(day) for day in dates]
    alerts = [alert for day in days for alert in drift_alerts(settings(), day, run_id)]
    if alerts:
        record_drift(settings(), alerts)
    config = settings()
    log.info(
        "%d drift alert(s) beyond z=%s over %d trading days (severity %s)\n%s",
        len(alerts),
        config.drift_z_threshold,
        config.drift_window_days,
        config.drift_severity,
        as_table(alerts, DRIFT_COLUMNS) if alerts else "",
    )
    raise_on_drift(config, alerts)
    return {"alerts": len(alerts), "severity": config.drift_severity}
