"""The training DAG parses on its own, weekly, with its three trainings and a summary."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_training_dag() -> None:
    from infra.airflow_env import airflow_env
    from stocklake.settings import get_settings

    for key, value in airflow_env(get_settings()).items():
        os.environ.setdefault(key, value)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "stock_market_training.py"))
    assert bag.import_errors == {}
    dag = bag.dags["stock_market_training"]
    trainings = {"train_direction", "train_stress_intraday", "train_stress_daily"}
    assert set(dag.task_ids) == trainings | {"completion_summary"}
    summary = dag.get_task("completion_summary")
    assert summary.upstream_task_ids == trainings
    # A skipped stress index still gets a summary; a failed one fails the run.
    assert summary.trigger_rule == "none_failed"
    assert dag.timetable.summary == "0 6 * * 6"  # weekly; manual runs need no schedule
    assert not dag.catchup and dag.max_active_runs == 1
