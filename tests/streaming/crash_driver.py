"""Child process for the crash tests: land, and SIGKILL itself at a named flush step.

Usage: python crash_driver.py KIND TOPIC GROUP BATCH_RECORDS [STEP:N[:stop]]
With `:stop` it SIGSTOPs itself there instead (a stall: the test sends SIGCONT).
Settings come from the environment (the test points LAKE_BUCKET at its bucket).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter

from stocklake.settings import get_settings
from streaming.landing import land
from streaming.retry import RetryPolicy


def main() -> None:
    kind, topic, group, batch_records = sys.argv[1:5]
    crash_at = sys.argv[5] if len(sys.argv) > 5 else None
    seen: Counter[str] = Counter()

    def probe(step: str) -> None:
        seen[step] += 1
        if crash_at == f"{step}:{seen[step]}":
            # kill -9 of ourselves: no flush, no close, no atexit.
            os.kill(os.getpid(), signal.SIGKILL)
        elif crash_at == f"{step}:{seen[step]}:stop":
            os.kill(os.getpid(), signal.SIGSTOP)

    summary = land(
        get_settings(),
        kind,  # type: ignore[arg-type]
        topic=topic,
        group_id=group,
        until_idle=1.0,
        batch_records=int(batch_records),
        retry=RetryPolicy(attempts=3, first_delay=0.2),
        probe=probe,
    )
    print(json.dumps(summary.to_dict()))


if __name__ == "__main__":
    main()
