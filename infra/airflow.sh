#!/usr/bin/env bash
# `make airflow`: the Airflow UI and scheduler on the embedded stack.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/stocklake up >/dev/null
exec .venv/bin/stocklake airflow-ui
