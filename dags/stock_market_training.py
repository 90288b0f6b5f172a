"""stock_market_training: the models, trained from the warehouse's features, weekly.

read daily_features -> train the direction model -> publish a version to the lake ->
record its metrics in model_runs; the same for the stress index on intraday_features
and on daily_features; then one summary. Weekly (Saturday 06:00 UTC) and on demand
(trigger it in the UI or `airflow dags trigger stock_market_training`).

Wiring only: the work is `models/` (pure training, the lake registry) and
`loaders.run_query` (the warehouse), imported inside the tasks. Each task returns a
JSON-safe summary (name, version, fingerprint, test metrics) passed on as an XComArg.
A stress index without the data it needs (no intraday bars loaded, no drop in a part)
is skipped, with the reason in the log; the direction model is required.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from dags.common import DEFAULT_ARGS, completion_summary, log, settings, skip_run, tracked
from dags.lineage import lake_folder, table
from stocklake import lake

MODELS = lake_folder(lake.MODELS)  # each model's versions


def _warehouse_frame(which: str):
    """daily_features or intraday_features, read-only, as a frame."""
    from loaders import run_query
    from models.data import read_features

    return read_features(lambda statement: run_query(settings(), statement), which)


def _publish_and_record(result: Any) -> dict[str, Any]:
    """The new version in the lake, its metrics in model_runs; the summary for XCom."""
    from loaders import run_query
    from models.card import model_run_rows, model_runs_insert_sql
    from models.registry import ModelRegistry

    card = ModelRegistry.from_settings(settings()).publish(result.name, result.model, result.card)
    try:
        run_query(
            settings(), model_runs_insert_sql(model_run_rows(card, card["version"])), write=True
        )
        recorded = True
    except Exception as error:  # model_runs comes with a loaders migration
        log.warning("model_runs not recorded: %s: %s", type(error).__name__, error)
        recorded = False
    test = card["metrics"]["test"]
    return {
        "model": card["name"],
        "version": card["version"],
        "training_range": card["training_range"],
        "data_fingerprint": card["data_fingerprint"],
        "recorded": recorded,
        "rows": card.get("rows"),  # {part: rows}
        "test": {scorer: {k: v for k, v in values.items()} for scorer, values in test.items()},
    }


@dag(
    dag_id="stock_market_training",
    description="Warehouse features -> direction model and stress index -> lake versions",
    schedule=CronDataIntervalTimetable("0 6 * * 6", timezone="UTC"),
    start_date=datetime(2019, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["stocklake", "models"],
    params={
        "seed": Param(17, type="integer", description="Random seed of the direction model"),
    },
)
def stock_market_training() -> None:
    @task(
        execution_timeout=timedelta(minutes=20),
        inlets=[table("daily_features")],
        outlets=[MODELS],
    )
    @tracked("train")
    def train_direction(params=None) -> dict:
        """The next-day direction model on daily_features."""
        from models.direction import DirectionError, train_direction

        try:
            result = train_direction(_warehouse_frame("daily"), seed=int(params["seed"]))
        except DirectionError as error:
            raise ValueError(f"direction model: {error}") from None
        return _publish_and_record(result)

    @task(execution_timeout=timedelta(minutes=20), outlets=[MODELS])
    @tracked("train")
    def train_stress(kind: str) -> dict:
        """The stress index on intraday_features (stress_intraday) or daily_features."""
        from models.stress import INTRADAY, StressError, train_stress

        which = "intraday" if kind == INTRADAY else "daily"
        unit = "minutes" if kind == INTRADAY else "days"
        frame = _warehouse_frame(which)
        if frame.empty:
            skip_run(f"{which}_features is empty: nothing to train {kind} on")
        try:
            result = train_stress(
                frame,
                kind,
                # STRESS_<KIND>_DROP_PCT and STRESS_<KIND>_HORIZON_<UNIT>.
                drop_pct=getattr(settings(), f"stress_{which}_drop_pct"),
                horizon=getattr(settings(), f"stress_{which}_horizon_{unit}"),
            )
        except StressError as error:
            skip_run(str(error))
        return _publish_and_record(result)

    direction = train_direction()
    intraday = train_stress.override(
        task_id="train_stress_intraday", inlets=[table("intraday_features")]
    )("stress_intraday")
    daily = train_stress.override(task_id="train_stress_daily", inlets=[table("daily_features")])(
        "stress_daily"
    )
    # Its trigger rule is none_failed: a skipped stress index must not skip the summary;
    # a failed one fails the run.
    completion_summary(
        "stock_market_training",
        {"direction": direction, "stress intraday": intraday, "stress daily": daily},
    )


stock_market_training()
