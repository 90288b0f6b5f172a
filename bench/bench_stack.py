"""Benchmark the embedded stack: cold, warm and restart `stocklake up`, idle RSS per service.

Runs a private stack (its own state folder and free ports) so a running development
stack is not disturbed, then stops it. `bench/bench_s3_servers.py` measures the same
figures for moto and SeaweedFS side by side.

    .venv/bin/python bench/bench_stack.py [--idle-seconds 5] [--config default|moto|seaweedfs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_s3_servers import CONFIGS, measure

from bench.results import save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--config", choices=list(CONFIGS), default="default")
    args = parser.parse_args()
    figures = measure(args.config, argparse.Namespace(records=0, **vars(args)))
    print(f"stack: {args.config} {CONFIGS[args.config]}")
    print(f"stocklake up, cold (initdb, new state):  {figures['up_cold_s']:6.2f} s")
    print(f"stocklake up, all already healthy:       {figures['up_warm_s']:6.2f} s")
    print(f"stocklake up, restart on existing state: {figures['up_restart_s']:6.2f} s")
    print(f"idle RSS after {args.idle_seconds:.0f} s (process and its children):")
    for key, value in figures.items():
        if key.startswith("idle_rss_mb_"):
            print(f"  {key.removeprefix('idle_rss_mb_'):<9} {value:8.1f} MB")
    save(
        "bench_stack",
        {
            "config": args.config,
            "seconds": {
                "up_cold": figures["up_cold_s"],
                "up_warm": figures["up_warm_s"],
                "up_restart": figures["up_restart_s"],
            },
            "idle_rss_mb": {
                key.removeprefix("idle_rss_mb_"): value
                for key, value in figures.items()
                if key.startswith("idle_rss_mb_")
            },
        },
    )


if __name__ == "__main__":
    main()
