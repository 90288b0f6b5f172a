#!/usr/bin/env bash
# `make run`: start the embedded stack and Airflow, run both DAGs through Airflow's
# scheduler (a backfill and a triggered run), show the result; the work is in
# infra/pipeline_run.py.
#
# SOURCE=csv (default, the bundled real bars, offline) or yfinance or synthetic.
# BATCH_DATES: trading dates for stock_market_batch (first to last, one run a weekday).
# REALTIME_DATE / REALTIME_SECONDS: the simulated session and its wall duration.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m infra.pipeline_run "$@"
