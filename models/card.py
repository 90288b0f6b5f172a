"""What a trained model says about itself: its card and its `model_runs` rows.

The fingerprint is the SHA-256 of the training rows' canonical bytes: a header line of
the column names, then one line per row in key order, fields separated by U+001F;
a float is written as `repr` (round-trips exactly), a missing value as the empty
string, a date or timestamp in ISO form. Any change to one training row changes it.
"""

from __future__ import annotations

import hashlib
import math
import platform
import subprocess
from collections.abc import Sequence
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from stocklake.schemas import MODEL_RUNS_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("scikit-learn", "numpy", "pandas", "joblib", "scipy")


def _field(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _field(value.item())
    return str(value)


def fingerprint(frame: pd.DataFrame, key: Sequence[str], columns: Sequence[str]) -> str:
    """SHA-256 (hex) of the rows' canonical bytes, in key order."""
    ordered = frame.sort_values(list(key), kind="stable")[list(columns)]
    digest = hashlib.sha256()
    digest.update(("\x1f".join(columns) + "\n").encode())
    for row in ordered.itertuples(index=False, name=None):
        digest.update(("\x1f".join(_field(value) for value in row) + "\n").encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def git_commit() -> str:
    """`git rev-parse HEAD` of the project, or "unknown" (no git, not a checkout)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"


def model_run_rows(card: dict[str, Any], version: int) -> list[dict[str, Any]]:
    """The card's metrics as `model_runs` rows (MODEL_RUNS_COLUMNS), for the warehouse."""
    rows = []
    trained_at = datetime.fromisoformat(card["trained_at"])
    for part, scorers in card["metrics"].items():
        period = card["ranges"].get(part) or [None, None]
        for scorer, values in scorers.items():
            for metric, value in values.items():
                if metric == "rows":
                    continue
                rows.append(
                    {
                        "model_name": card["name"],
                        "version": version,
                        "part": part,
                        "scorer": scorer,
                        "metric": metric,
                        "value": None if value is None else float(value),
                        "rows": int(values.get("rows", 0)),
                        "period_start": date.fromisoformat(period[0]) if period[0] else None,
                        "period_end": date.fromisoformat(period[1]) if period[1] else None,
                        "data_fingerprint": card["data_fingerprint"],
                        "git_commit": card["git_commit"],
                        "trained_at": trained_at,
                    }
                )
    return rows


MODEL_RUNS_TABLE = "model_runs"


def _sql_literal(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):  # a string literal: both engines cast it
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def model_runs_insert_sql(rows: list[dict[str, Any]], table: str = MODEL_RUNS_TABLE) -> str:
    """One portable INSERT of `model_run_rows` (for `loaders.run_query(..., write=True)`)."""
    if not rows:
        raise ValueError("no model_runs rows to insert")
    names = [name for name, _ in MODEL_RUNS_COLUMNS]
    values = ",\n".join(
        "(" + ", ".join(_sql_literal(row[name]) for name in names) + ")" for row in rows
    )
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES\n{values}"
