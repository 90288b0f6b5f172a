"""Models on the lake: a next-day direction classifier and a stress index.

A stage: imports only the shared core (`stocklake`). Training is pure (pandas
DataFrames of the warehouse's feature tables in, a fitted model, its card and its
metric rows out); the CLI (`cli/models.py`) and the training DAG read the warehouse
with `loaders.run_query` and call these. Artifacts are versioned in the lake
(`models.registry`); the prediction API (`models.api`) is given a feature lookup.

    models/direction.py   next-day direction: features, label, time split, training
    models/stress.py      the stress index (intraday and daily) and its tuned threshold
    models/threshold.py   the F1-maximising threshold search
    models/split.py       the time split (train / validate / test by date, with an embargo)
    models/card.py        the card: fingerprint, library versions, git commit, run rows
    models/registry.py    models/<name>/v<N>/ in the lake, the `latest` pointer
    models/data.py        the warehouse queries (SQL text only) and a frame-backed lookup
    models/api.py         the FastAPI app
"""

from models.card import MODEL_RUNS_COLUMNS, model_run_rows
from models.direction import DIRECTION_FEATURES, DirectionResult, train_direction
from models.registry import MODELS_PREFIX, ModelRegistry, RegistryError
from models.stress import StressResult, train_stress
from models.threshold import best_f1_threshold

__all__ = [
    "DIRECTION_FEATURES",
    "MODELS_PREFIX",
    "MODEL_RUNS_COLUMNS",
    "DirectionResult",
    "ModelRegistry",
    "RegistryError",
    "StressResult",
    "best_f1_threshold",
    "model_run_rows",
    "train_direction",
    "train_stress",
]
