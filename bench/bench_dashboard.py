"""Benchmark: time to first render of each dashboard page, 10 years x 50 symbols.

Runs bench/dashboard_scale.py (pytest, with the test suite's fixtures: the shared stack's
warehouse, a private schema, headless Chromium) and prints, per page, the server's first
render (AppTest, empty cache; goal under 2 s) and the browser's load until every chart is
drawn.

    python bench/bench_dashboard.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import FIGURES_ENV, save  # noqa: E402


def main() -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(ROOT / "bench" / "dashboard_scale.py"),
        "-p",
        "tests.conftest",
        "-p",
        "tests.dashboard.conftest",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(ROOT),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        figures = Path(folder) / "figures.json"
        env = {**os.environ, FIGURES_ENV: str(figures)}
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        if figures.exists():
            save("bench_dashboard", {"symbols": 50, "years": 10, **json.loads(figures.read_text())})
    return code


if __name__ == "__main__":
    raise SystemExit(main())
