#!/usr/bin/env bash
# `make run`: start the embedded stack, run both DAGs end to end, show the result.
#
# SOURCE=csv (default, the bundled real bars, offline) or yfinance or synthetic.
# BATCH_DATES: the trading dates to run stock_market_batch for (one run each).
# REALTIME_DATE / REALTIME_SECONDS: the simulated session and its wall duration.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCKLAKE=.venv/bin/stocklake
SOURCE="${SOURCE:-csv}"
if [ "$SOURCE" = "yfinance" ]; then
  # Yahoo serves recent bars only: the last three weekdays before today.
  default_dates=$(.venv/bin/python -c "
import datetime as d
day, out = d.date.today(), []
while len(out) < 3:
    day -= d.timedelta(days=1)
    if day.weekday() < 5: out.append(day.isoformat())
print(' '.join(reversed(out)))")
else
  default_dates="2020-12-29 2020-12-30 2020-12-31"
fi
BATCH_DATES="${BATCH_DATES:-$default_dates}"
REALTIME_DATE="${REALTIME_DATE:-2020-12-31}"
REALTIME_SECONDS="${REALTIME_SECONDS:-30}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
timed() {
  local label=$1; shift
  local t0=$SECONDS
  "$@"
  timings+=("$(printf '%-45s %4d s' "$label" $((SECONDS - t0)))")
}
run_dag() {
  # `airflow dags test` runs the whole DAG in this process; its log goes to a file.
  local dag=$1 logical=$2 conf=$3 log
  log=".state/logs/${dag}-${logical%%T*}.log"
  mkdir -p .state/logs
  if ! $STOCKLAKE airflow dags test "$dag" "$logical" --conf "$conf" >"$log" 2>&1; then
    echo "$dag $logical FAILED; the last lines of $log:"
    tail -n 40 "$log"
    exit 1
  fi
  if ! grep -q "state=success" "$log"; then
    echo "$dag $logical did not succeed; see $log"
    grep -E "ERROR|stage .* failed" "$log" | tail -n 20
    exit 1
  fi
  echo "$dag for $logical: success (log: $log)"
  # The task's summary block, without the log's time stamps and logger names.
  sed -n '/completed:/,/stocklake\.dags\]/p' "$log" \
    | sed -E 's/^[0-9T:.Z-]+ \[[a-z ]+\] //; s/ +\[stocklake\.dags\] loc=.*$//' || true
}

timings=()
step "Starting the local stack"
timed "stocklake up" $STOCKLAKE up

step "stock_market_batch: source=$SOURCE, trading dates $BATCH_DATES"
for day in $BATCH_DATES; do
  timed "stock_market_batch $day" \
    run_dag stock_market_batch "${day}T22:00:00+00:00" "{\"source\": \"$SOURCE\"}"
done

step "stock_market_realtime: simulated session $REALTIME_DATE, ${REALTIME_SECONDS}s accelerated"
timed "stock_market_realtime $REALTIME_DATE" \
  run_dag stock_market_realtime "${REALTIME_DATE}T21:00:00+00:00" \
  "{\"duration_seconds\": $REALTIME_SECONDS, \"rate\": 200, \"clock\": \"accelerated\"}"

step "What the pipeline produced"
timed "report" $STOCKLAKE report

step "Timings"
printf '%s\n' "${timings[@]}"

cat <<TXT

The stack is still running:
  lake      $($STOCKLAKE status --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)[1]['endpoint'])")  (browse: .venv/bin/stocklake ls)
  warehouse psql -h 127.0.0.1 -p $(.venv/bin/python -c "from stocklake.settings import get_settings as g; print(g().postgres_port)") -U postgres stocklake   (or: .venv/bin/stocklake sql "SELECT ...")
  Airflow   make airflow   (UI on http://127.0.0.1:8080, login shown when it starts)
Stop everything with: make down
TXT
