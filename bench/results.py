"""Where every benchmark writes its figures, and the goals they are compared with.

Each `bench/bench_*.py` ends with `save(NAME, figures)`: one JSON file per script under
`bench/results/`, stamped with the time, the commit and the machine. `bench/report.py`
reads them all, prints one table of the goals below with the measured figure beside each,
and (with `--readme`) writes the README's benchmark section from the same files.

A figure's JSON holds, by convention:
  sizes:  [{"label": "1M ticks", "records": 1000000, "seconds": {...}, "us_per_record": {...}}]
          one row per size the script ran, so a reader sees whether cost grows linearly;
  ratios: {"name": value}, each measured in one run on the same data (the largest size);
  peak_rss_mb: {"process": MB};
  seconds: {"name": wall seconds} for end-to-end figures.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# A script that runs another program (bench_dashboard runs pytest) names a file here for
# that program to leave its figures in.
FIGURES_ENV = "STOCKLAKE_BENCH_FIGURES"


@dataclass(frozen=True)
class Goal:
    """One row of the ratio table: a figure in a script's results and the goal it must meet."""

    figure: str  # what a reader sees
    script: str  # results file stem, e.g. "bench_load"
    path: str  # dotted key inside that file, e.g. "ratios.updates_over_copy"
    op: str  # "<=", "<", ">=" or ">"
    target: float
    unit: str = "x"

    def value(self, results: dict[str, dict]) -> float | None:
        node: Any = results.get(self.script)
        for key in self.path.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, int | float) else None

    def met(self, value: float) -> bool:
        return {
            "<=": value <= self.target,
            "<": value < self.target,
            ">=": value >= self.target,
            ">": value > self.target,
        }[self.op]


# The goals of issue 14, each a figure measured in one run on the same data.
GOALS: tuple[Goal, ...] = (
    Goal(
        "landing rate / bare kafka-python consume rate, 1M ticks",
        "bench_produce_land",
        "ratios.landing_over_kafka_python",
        ">=",
        2.0,
    ),
    Goal(
        "landing rate / bare confluent-kafka consume rate, same topic",
        "bench_produce_land",
        "ratios.landing_over_confluent",
        ">=",
        0.6,
    ),
    Goal(
        "Spark daily over the lake (s3a) / Spark daily on a local parquet copy",
        "bench_spark_daily",
        "ratios.s3a_over_local",
        "<=",
        1.5,
    ),
    Goal(
        "Spark daily on local parquet / DuckDB on the same files, 10M bars",
        "bench_spark_daily",
        "ratios.local_over_duckdb",
        "<=",
        3.0,
    ),
    Goal(
        "loader (1M rows, all updates) / binary COPY into a logged keyed table",
        "bench_load",
        "ratios.updates_over_copy",
        "<=",
        1.5,
    ),
    Goal(
        "streaming p95 latency, tick to its window row, in triggers",
        "bench_spark_stream",
        "ratios.p95_latency_triggers",
        "<=",
        2.0,
        "triggers",
    ),
    Goal(
        "peak RSS, landing (1M ticks)", "bench_produce_land", "peak_rss_mb.landing", "<", 500, "MB"
    ),
    Goal("peak RSS, loader (1M rows)", "bench_load", "peak_rss_mb.loader", "<", 1024, "MB"),
    Goal(
        "peak RSS of the Spark driver / driver memory set, 10M bars",
        "bench_spark_daily",
        "ratios.driver_rss_over_setting",
        "<=",
        1.0,
    ),
    Goal(
        "backfill 11 years x 7 symbols (19,376 bars): produce, land, spark daily, load",
        "bench_backfill",
        "seconds.small_total",
        "<",
        120,
        "s",
    ),
    Goal(
        "backfill 500 symbols x 20 years (about 2.5M bars), same steps",
        "bench_backfill",
        "seconds.large_total",
        "<",
        600,
        "s",
    ),
)


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children), in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # Linux reports KiB


def per_record_us(seconds: float, records: int) -> float:
    """Microseconds per record: the figure that shows whether cost grows linearly."""
    return round(seconds * 1e6 / records, 3) if records else 0.0


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on: ratios hold across machines, absolute times do not."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def save(name: str, figures: dict[str, Any]) -> Path:
    """Write `bench/results/NAME.json` (stamped) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamped = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "machine": machine(),
        **figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(stamped, indent=2, sort_keys=False) + "\n")
    print(f"figures written to {path.relative_to(ROOT)}")
    return path


def load_all() -> dict[str, dict]:
    """Every results file, by script name."""
    return {
        path.stem: json.loads(path.read_text()) for path in sorted(RESULTS.glob("bench_*.json"))
    }
