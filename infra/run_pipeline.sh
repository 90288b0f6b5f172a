#!/usr/bin/env bash
# `make run`: start the embedded stack and show where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCKLAKE=.venv/bin/stocklake

$STOCKLAKE up
echo
echo "The stack is running. Stop it with: make down"
