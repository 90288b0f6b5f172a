"""Benchmark how long each DAG file takes to parse, in a fresh interpreter.

Airflow's dag-processor parses every DAG file again every few seconds, so a file should
parse in well under a second (the figure tests/dags once asserted; a threshold flakes on
a busy machine, so it is measured here). Each file is parsed `--runs` times, each in a
new process (nothing imported before), and the median, min and max are printed.

    .venv/bin/python bench/bench_dag_parse.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import save  # noqa: E402

DAG_FILES = ("stock_market_batch.py", "stock_market_realtime.py", "stock_market_training.py")
TARGET_SECONDS = 1.0

# Airflow is configured (and imported) before the clock starts: only the file's parse counts.
_PARSE = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from infra.airflow_env import airflow_env
from stocklake.settings import get_settings
for key, value in airflow_env(get_settings()).items():
    os.environ.setdefault(key, value)
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder={path!r})
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "errors": list(bag.import_errors)}}))
"""


def parse_seconds(dag_file: str) -> float:
    script = _PARSE.format(root=str(ROOT), path=str(ROOT / "dags" / dag_file))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"{dag_file} does not parse: {result['errors']}")
    return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"DAG file parse time, {args.runs} fresh processes each (target < {TARGET_SECONDS} s)")
    medians = {}
    for dag_file in DAG_FILES:
        times = [parse_seconds(dag_file) for _ in range(args.runs)]
        medians[dag_file.removesuffix(".py")] = round(statistics.median(times), 3)
        print(
            f"{dag_file:<26} median {statistics.median(times):5.2f} s"
            f"  min {min(times):5.2f} s  max {max(times):5.2f} s"
        )
    save("bench_dag_parse", {"runs": args.runs, "median_seconds": medians})


if __name__ == "__main__":
    main()
