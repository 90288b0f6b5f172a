"""What the DAGs share: default task arguments, the failure callback, run metadata, glue.

Cheap to import (no stage, Spark or pandas import at parse time). Tasks pass data as
TaskFlow XComArgs only; `completion_summary` takes the hops' outputs the same way.
`tracked` records each task as a stage of its DAG run (`pipeline_runs`, `stage_runs`),
with the counts `stage_counts` reads from the task's summary.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import lru_cache
from typing import Any, NoReturn

from infra.airflow_env import S3_CONN_ID, SPARK_CONN_ID
from stocklake.settings import PROJECT_ROOT, Settings, get_settings

log = logging.getLogger("stocklake.dags")

__all__ = [
    "DEFAULT_ARGS",
    "S3_CONN_ID",
    "SPARK_CONN_ID",
    "completion_summary",
    "lake_bucket",
    "log_summary",
    "settings",
    "skip_run",
    "spark_cluster",
    "stage_counts",
    "summary_of",
    "tracked",
]


def on_task_failure(context: dict[str, Any]) -> None:
    """Say which stage failed and why, in one line that is easy to find in the log."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    stage = getattr(ti, "task_id", "?")
    run = getattr(context.get("dag_run"), "run_id", "?")
    log.error(
        "stocklake stage %r failed in %s (try %s): %s: %s",
        stage,
        run,
        getattr(ti, "try_number", "?"),
        type(error).__name__ if error else "unknown",
        error,
    )


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "stocklake",
    "retries": get_settings().airflow_task_retries,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": on_task_failure,
}


def skip_run(reason: str) -> NoReturn:
    """Skip the task, saying why in its log (Airflow itself logs only "Skipping task.")."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.warning("skipping: %s", reason)
    raise AirflowSkipException(reason)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return get_settings()


def lake_bucket() -> str:
    return settings().lake_bucket


def spark_cluster() -> bool:
    """Submit Spark jobs to a cluster (SparkSubmitOperator) instead of running in-process."""
    return settings().spark_master.startswith("spark://")


def stocklake_entrypoint() -> str:
    """The script spark-submit runs on the cluster: the `stocklake` command line."""
    return str(PROJECT_ROOT / "cli" / "__main__.py")


def summary_of(result: Any) -> dict[str, Any]:
    """A stage's summary as a JSON-safe dict for XCom."""
    for method in ("as_dict", "to_dict"):
        if hasattr(result, method):
            data = getattr(result, method)()
            break
    else:
        data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
    return _json_safe(data)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _for_people(key: str, value: Any, summary: dict[str, Any]) -> Any:
    """Seconds rounded; no rate for a hop that processed nothing (XCom keeps the full value)."""
    if key == "seconds" and isinstance(value, int | float):
        return f"{value:.2f} s"
    if key.endswith("_per_second"):
        counts = [summary[name] for name in ("records", "records_in") if name in summary]
        return "-" if not value or (counts and not any(counts)) else value
    return value


def log_summary(dag_id: str, hops: dict[str, Any]) -> None:
    lines = [f"{dag_id} completed:"]
    for hop, summary in hops.items():
        if summary is None:
            lines.append(f"  {hop:<15} (no result)")
            continue
        if isinstance(summary, dict):
            shown = ", ".join(
                f"{k}={_for_people(k, v, summary)}"
                for k, v in summary.items()
                if not isinstance(v, dict | list)
                or k in ("quarantined", "dates", "partitions_written", "failures")
            )
        else:
            shown = str(summary)
        lines.append(f"  {hop:<15} {shown}")
    log.info("\n".join(lines))


def completion_summary(dag_id: str, hops: dict[str, Any]):
    """The last task of a DAG: each hop's summary in one log block.

    `hops` maps a hop's name to its task's output: an XComArg (a TaskFlow task's return
    value, or a classic operator's `.output`). Airflow resolves them for this task and
    runs it after every one of them.
    """
    from airflow.sdk import XComArg, task

    for hop, output in hops.items():
        if not isinstance(output, XComArg):
            raise TypeError(f"{dag_id}: hop {hop!r} needs its task's output, got {output!r}")

    # The run's last stage: it marks the run succeeded. "none_failed": it also runs after a
    # skipped hop (a holiday), but not after a failed one (that task marked the run failed).
    @task(task_id="completion_summary", trigger_rule="none_failed")
    @tracked(finishes_run=True)
    def summarise(summaries: dict[str, Any]) -> None:
        log_summary(dag_id, summaries)

    return summarise(hops)


# ----------------------------------------------------------------- run metadata


def stage_counts(kind: str, summary: Any) -> dict[str, int]:
    """The stage counts a task's summary gives (pure; the core's `STAGE_SUMMARY_COUNTS`,
    shared with the CLI)."""
    from stocklake.governance import summary_counts

    return summary_counts(kind, summary)


def ingest_ledger(config: Settings) -> Any:
    """The warehouse's ingestion_metadata as the historical producer's guard reads it."""
    from ingestion.producer import IngestLedger
    from loaders.governance import ingestions_of, record_ingestion
    from stocklake.schemas import RecordKind
    from streaming.options import default_group_id

    return IngestLedger(
        earlier=functools.partial(ingestions_of, config),
        record=functools.partial(record_ingestion, config),
        landing_group=default_group_id(RecordKind.HISTORICAL),
    )


def run_context() -> dict[str, Any]:
    """The running task's DAG run as `tracked_stage` wants it (from Airflow's context)."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return {
        "run_id": context["run_id"],
        "pipeline": context["dag"].dag_id,
        "stage": context["task_instance"].task_id,
        "logical_date": context.get("logical_date"),
        "interval": (context.get("data_interval_start"), context.get("data_interval_end")),
    }


def tracked(kind: str = "none", *, finishes_run: bool = False) -> Callable:
    """Run a task's callable as a stage of its DAG run (`loaders.governance.tracked_stage`).

    The run's `pipeline_runs` row (run id: Airflow's; pipeline: the DAG id) and the task's
    `stage_runs` row, with the counts `stage_counts(kind, ...)` reads from what it returns.
    An exception marks the stage and the run failed; a skip is a stage that succeeded
    with no counts (its reason is in the task log). Put it under `@task`: TaskFlow still
    sees the callable's own parameters.
    """

    def wrap(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            from airflow.sdk.exceptions import AirflowSkipException

            from loaders.governance import tracked_stage
            from stocklake.governance import RunKind

            skipped = None
            with tracked_stage(
                settings(), run_kind=RunKind.DAG, finishes_run=finishes_run, **run_context()
            ) as stage:
                try:
                    summary = function(*args, **kwargs)
                except AirflowSkipException as skip:
                    skipped, summary = skip, None
                for count, value in stage_counts(kind, summary).items():
                    setattr(stage.counts, count, value)
            if skipped is not None:
                raise skipped
            return summary

        return run

    return wrap
