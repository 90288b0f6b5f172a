"""The prediction API: one direction model version, loaded once when the app is made.

    GET  /health    the model's name, version, training range and data fingerprint
    GET  /models    the published versions of the model (and which one is served)
    POST /predict   {"symbol": "AAPL", "date": "2020-06-01"}: features read through the
                    app's FeatureSource (the warehouse's daily_features, as of that date),
                    or {"features": {"close_to_sma_7_pct": 1.2, ...}}: every feature of
                    the model, finite numbers;
                    -> probability of an up day, class (1 up / 0 not), model and version
    GET  /docs      the OpenAPI page

Bad input is a 4xx naming the problem: 422 for a malformed body (wrong types, unknown
fields, both or neither of symbol/date and features, a missing, extra or non-finite
feature value, features that cannot be computed for the date: too little history), 404
for an unknown symbol or a date without a daily_features row for it. A feature source
that fails (warehouse down) is a 503.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.data import FeatureSource
from models.direction import HISTORY_ROWS, features_at
from models.registry import ModelRegistry, RegistryError
from stocklake.schemas import is_symbol

log = logging.getLogger(__name__)
DEFAULT_MODEL = "direction"


class PredictRequest(BaseModel):
    """A symbol and a date, or explicit feature values (not both)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    symbol: str | None = Field(None, description="A symbol in daily_features, e.g. AAPL")
    day: date | None = Field(
        None,
        alias="date",
        strict=False,
        description="Prediction date (YYYY-MM-DD): a day with features",
    )
    features: dict[str, float] | None = Field(
        None, description="Every feature of the model (GET /health lists them), finite"
    )

    @field_validator("day", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("date must be a string YYYY-MM-DD")
        return value


class Prediction(BaseModel):
    model: str
    version: int
    probability: float = Field(description="P(the next trading day's return > 0)")
    predicted_class: int = Field(alias="class", description="1: up, 0: not up")
    symbol: str | None = None
    date: str | None = None
    features: dict[str, float]


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=message)


DOCS_ASSETS = "/docs-assets"


def serve_docs_offline(app: FastAPI) -> None:
    """`/docs` from the Swagger UI files installed with the project (swagger-ui-bundle),
    not from a CDN: the page works on a machine without internet. That Swagger UI (4.x)
    reads OpenAPI 3.0, so the schema is served as 3.0.3 (nothing here needs 3.1)."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.openapi_version = "3.0.3"
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


@dataclass(frozen=True)
class Served:
    """The one model version an app serves, with where it reads features."""

    name: str
    model: Any
    card: dict[str, Any]
    registry: ModelRegistry
    source: FeatureSource | None

    @property
    def features(self) -> list[str]:
        return list(self.card["features"])

    @property
    def history_rows(self) -> int:
        return int(self.card.get("history_rows", HISTORY_ROWS))


def create_app(
    registry: ModelRegistry,
    source: FeatureSource | None = None,
    *,
    name: str = DEFAULT_MODEL,
    version: int | None = None,
) -> FastAPI:
    """The app serving `name` at `version` (None: the latest), loaded now, once."""
    model, card = registry.load(name, version)
    if card.get("kind") != "classifier" or not hasattr(model, "predict_proba"):
        raise RegistryError(
            f"model {name!r} is a {card.get('kind', 'model')}, not a classifier: "
            "the API serves the direction model"
        )
    served = Served(name, model, card, registry, source)
    app = FastAPI(
        title="stocklake prediction API",
        description=f"Model {name!r} v{card['version']}: {card.get('description', '')}",
        version=str(card["version"]),
        docs_url=None,
        redoc_url=None,
    )
    serve_docs_offline(app)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unexpected error")
        return JSONResponse(status_code=503, content={"detail": f"{type(error).__name__}: {error}"})

    app.get("/health")(lambda: health_of(served))
    app.get("/models")(lambda: versions_of(served))

    @app.post("/predict", response_model=Prediction, response_model_by_alias=True)
    def predict(request: PredictRequest) -> dict[str, Any]:
        return prediction(served, request)

    return app


def health_of(served: Served) -> dict[str, Any]:
    """GET /health: the served model, its version, training range and fingerprint."""
    card = served.card
    return {
        "status": "ok",
        "model": served.name,
        "version": card["version"],
        "training_range": card["training_range"],
        "data_fingerprint": card["data_fingerprint"],
        "trained_at": card["trained_at"],
        "git_commit": card["git_commit"],
        "features": served.features,
        "feature_source": served.source is not None,
    }


def versions_of(served: Served) -> dict[str, Any]:
    """GET /models: every published version of the served model."""
    listed = []
    for number in served.registry.versions(served.name):
        other = served.registry.card(served.name, number)
        listed.append(
            {
                "version": number,
                "training_range": other["training_range"],
                "trained_at": other["trained_at"],
                "data_fingerprint": other["data_fingerprint"],
                "test": other["metrics"].get("test", {}).get("model"),
            }
        )
    return {"model": served.name, "serving": served.card["version"], "versions": listed}


def prediction(served: Served, request: PredictRequest) -> dict[str, Any]:
    """POST /predict: by symbol and date (features looked up) or by feature values."""
    by_symbol = request.symbol is not None or request.day is not None
    if by_symbol and request.features is not None:
        raise _unprocessable("give a symbol and a date, or features, not both")
    if request.features is not None:
        values = checked_features(request.features, served.features)
    elif request.symbol is None or request.day is None:
        raise _unprocessable(
            "give both symbol and date, or features"
            if by_symbol
            else "empty request: give a symbol and a date, or features"
        )
    else:
        values = looked_up(served, request.symbol, request.day)
    row = np.array([[float(values[key]) for key in served.features]])
    probability = float(served.model.predict_proba(row)[0, 1])
    return {
        "model": served.name,
        "version": served.card["version"],
        "probability": probability,
        "class": int(probability >= 0.5),
        "symbol": request.symbol,
        "date": request.day.isoformat() if request.day else None,
        "features": {key: float(values[key]) for key in served.features},
    }


def checked_features(values: dict[str, float], features: list[str]) -> dict[str, float]:
    """Given feature values: exactly the model's, every one finite (else a 422)."""
    missing = [key for key in features if key not in values]
    extra = sorted(set(values) - set(features))
    if missing or extra:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(extra)}"] if extra else []
        raise _unprocessable("features must be exactly the model's: " + "; ".join(parts))
    bad = [key for key in features if not math.isfinite(values[key])]
    if bad:
        raise _unprocessable(f"feature values must be finite: {', '.join(bad)}")
    return values


def looked_up(served: Served, symbol: str, day: date) -> dict[str, float]:
    """The model's features of `symbol` as of `day`, from the feature source (4xx/503)."""
    if served.source is None:
        raise HTTPException(
            status_code=422,
            detail="this server has no feature source: send {'features': {...}}",
        )
    if not is_symbol(symbol):
        raise _unprocessable(f"{symbol!r} is not a symbol (A-Z, digits, '.', '-', '^')")
    try:
        history = served.source.history(symbol, day, served.history_rows)
        known = len(history) > 0 or served.source.has_symbol(symbol)
    except Exception as error:
        log.exception("feature lookup failed")
        raise HTTPException(
            status_code=503, detail=f"the feature source failed: {type(error).__name__}"
        ) from None
    if not known:
        raise HTTPException(status_code=404, detail=f"unknown symbol {symbol!r}")
    if not len(history) or history["trade_date"].iloc[-1] != day:
        raise HTTPException(
            status_code=404,
            detail=f"no daily_features row for {symbol} on {day.isoformat()} "
            "(not a trading day, or not loaded)",
        )
    values = features_at(history)
    missing = [key for key, value in values.items() if not math.isfinite(value)]
    if missing:
        raise _unprocessable(
            f"the features of {symbol} on {day.isoformat()} cannot be computed "
            f"(too little history): {', '.join(missing)} missing"
        )
    return values
