"""Benchmark: the embedded stack on moto against SeaweedFS, side by side, in one run.

For each configuration a private stack (own state folder and free ports) is started:
  moto       moto's in-memory S3 server, Tansu in memory (the stack before SeaweedFS)
  seaweedfs  SeaweedFS, Tansu's log in memory (isolates the S3 server)
  default    SeaweedFS, Tansu's log in its S3 bucket (today's default: everything kept)
and measured with: cold/warm/restart `stocklake up` and idle RSS per service, and
`bench/bench_produce_land.py` on that stack (produce, bare consumers, landing). The s3a
daily job runs on a private SeaweedFS of its own (`bench/bench_spark_daily.py
--s3-server moto|seaweedfs`).

    .venv/bin/python bench/bench_s3_servers.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.private_stack import cli, stack_env  # noqa: E402

CONFIGS = {
    "moto": {"S3_SERVER": "moto", "KAFKA_STORAGE": "memory"},
    "seaweedfs": {"S3_SERVER": "seaweedfs", "KAFKA_STORAGE": "memory"},
    "default": {"S3_SERVER": "seaweedfs", "KAFKA_STORAGE": "s3"},
}


def _timed_up(env: dict[str, str]) -> float:
    began = time.monotonic()
    result = cli(env, "up")
    if result.returncode != 0:
        raise SystemExit(f"stocklake up failed:\n{result.stdout}{result.stderr}")
    return round(time.monotonic() - began, 2)


def _bench(script: str, env: dict[str, str], *args: str) -> dict:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{script} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    # The figures are the last thing printed: a JSON object starting on its own line.
    out = "\n" + result.stdout
    figures = json.loads(out[out.rindex("\n{") :])
    figures["wall_seconds"] = round(time.monotonic() - began, 1)
    return figures


def measure(name: str, args: argparse.Namespace) -> dict:
    state = Path(tempfile.mkdtemp(prefix=f"stocklake-bench-{name}-"))
    env = stack_env(state, **CONFIGS[name])
    figures: dict = {}
    try:
        figures["up_cold_s"] = _timed_up(env)
        figures["up_warm_s"] = _timed_up(env)
        cli(env, "down")
        figures["up_restart_s"] = _timed_up(env)
        time.sleep(args.idle_seconds)
        for service in json.loads(cli(env, "status", "--json").stdout):
            figures[f"idle_rss_mb_{service['name']}"] = service["rss_mb"]
        if args.records:
            land = _bench(
                "bench_produce_land.py", env, "--sizes", str(args.records), "--json", "--no-save"
            )
            [size] = land["sizes"]
            for what, rate in size["records_per_s"].items():
                figures[f"{what}_records_per_s"] = rate
            figures["landing_over_kafka_python"] = land["ratios"]["landing_over_kafka_python"]
            figures["landing_peak_rss_mb"] = land["peak_rss_mb"]["landing"]
            figures["exactly_once"] = land["exactly_once"]
    finally:
        cli(env, "down")
        pointer = state / "postgres" / "cluster-root"
        if pointer.exists():
            shutil.rmtree(pointer.read_text().strip(), ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="ticks; 0 skips landing")
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    args = parser.parse_args()
    results = {}
    for name in args.configs.split(","):
        print(f"== {name}: {CONFIGS[name]}", flush=True)
        results[name] = measure(name, args)
        print(json.dumps(results[name]), flush=True)
    names = list(results)
    keys = list(dict.fromkeys(k for figures in results.values() for k in figures))
    print()
    print(f"{'figure':<36}" + "".join(f"{n:>14}" for n in names))
    for key in keys:
        print(f"{key:<36}" + "".join(f"{results[n].get(key, '-')!s:>14}" for n in names))


if __name__ == "__main__":
    main()
