"""The data-quality suite and drift detection: a stage reading the lake.

A stage: imports only the shared core (`stocklake`). The CLI (`stocklake check`,
`stocklake drift`) and the DAGs call:

- `run_checks(settings, dataset, day, run_id, previous_checksum=None)` -> result rows
  (QUALITY_RESULTS_COLUMNS) of the dataset's declared checks on that date's partitions;
- `failures(rows)` / `raise_on_failures(rows)` (QualityError) for checks failed at
  severity fail;
- `drift_alerts(settings, day, run_id)` -> DRIFT_ALERTS_COLUMNS rows, and
  `raise_on_drift(settings, alerts)` (DriftError when DRIFT_SEVERITY=fail).

Storing rows is the caller's: `loaders.governance.record_quality` / `record_drift`.
"""

from quality.drift import DriftError, drift_alerts, raise_on_drift
from quality.lake_read import PartitionNotFoundError
from quality.run import QualityError, describe, failures, raise_on_failures, run_checks
from quality.suite import SUITE, DatasetSpec, spec_of

__all__ = [
    "SUITE",
    "DatasetSpec",
    "DriftError",
    "PartitionNotFoundError",
    "QualityError",
    "describe",
    "drift_alerts",
    "failures",
    "raise_on_drift",
    "raise_on_failures",
    "run_checks",
    "spec_of",
]
