"""Versions in the lake (a private bucket on the stack's S3): they only grow, `latest`
follows, the card and metrics are stored with the model, a tampered file is refused;
the card's metrics become `model_runs` rows that a warehouse table accepts."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from models.card import model_run_rows, model_runs_insert_sql
from models.direction import DIRECTION_FEATURES, DirectionResult
from models.registry import MODELS_PREFIX, ModelRegistry, RegistryError
from stocklake.schemas import MODEL_RUNS_COLUMNS
from stocklake.settings import Settings
from tests.warehouse import drop_schema

pytestmark = pytest.mark.services


def _object(registry: ModelRegistry, key: str) -> bytes:
    return registry.client.get_object(Bucket=registry.bucket, Key=key)["Body"].read()


def test_versions_grow_and_latest_follows(
    registry: ModelRegistry, direction: DirectionResult
) -> None:
    assert registry.versions("direction") == [] and registry.latest("direction") is None
    with pytest.raises(RegistryError, match="train one first"):
        registry.load("direction")
    first = registry.publish("direction", direction.pipeline, direction.card)
    second = registry.publish("direction", direction.pipeline, direction.card)
    assert (first["version"], second["version"]) == (1, 2)
    assert registry.versions("direction") == [1, 2] and registry.latest("direction") == 2
    assert registry.names() == ["direction"]

    prefix = f"{MODELS_PREFIX}/direction/v1/"
    card = json.loads(_object(registry, prefix + "card.json"))
    assert card["version"] == 1 and card["features"] == list(DIRECTION_FEATURES)
    assert card["training_range"] == direction.card["training_range"]
    assert card["data_fingerprint"] == direction.card["data_fingerprint"]
    assert {"libraries", "git_commit", "metrics", "model_sha256"} <= set(card)
    assert json.loads(_object(registry, prefix + "metrics.json")) == card["metrics"]
    assert _object(registry, f"{MODELS_PREFIX}/direction/latest").strip() == b"2"

    model, loaded = registry.load("direction", 1)
    assert loaded == card
    row = direction.frame[list(DIRECTION_FEATURES)].to_numpy()[:5]
    assert np.array_equal(model.predict_proba(row), direction.pipeline.predict_proba(row))
    with pytest.raises(RegistryError, match="no version 7"):
        registry.load("direction", 7)


def test_a_claimed_number_is_skipped_and_latest_never_goes_back(
    registry: ModelRegistry, direction: DirectionResult
) -> None:
    registry.publish("direction", direction.pipeline, direction.card)
    # Another trainer has claimed v2 (its model file exists, its card not yet).
    registry.client.put_object(
        Bucket=registry.bucket, Key=f"{MODELS_PREFIX}/direction/v2/model.joblib", Body=b"x"
    )
    third = registry.publish("direction", direction.pipeline, direction.card)
    assert third["version"] == 3
    assert registry.versions("direction") == [1, 3]  # v2 is not published (no card)
    registry._advance_latest("direction", 2)  # the slow trainer finishing late
    assert registry.latest("direction") == 3
    # A create of an existing key is refused (checked, and If-None-Match where honoured).
    assert not registry._create(f"{MODELS_PREFIX}/direction/v3/model.joblib", b"other")


def test_a_tampered_model_file_is_refused(
    registry: ModelRegistry, direction: DirectionResult
) -> None:
    registry.publish("direction", direction.pipeline, direction.card)
    registry.client.put_object(
        Bucket=registry.bucket, Key=f"{MODELS_PREFIX}/direction/v1/model.joblib", Body=b"evil"
    )
    with pytest.raises(RegistryError, match="refusing to load"):
        registry.load("direction")
    with pytest.raises(RegistryError, match="bad model name"):
        registry.versions("../x")


def test_model_runs_rows_go_into_a_warehouse_table(
    stack: Settings, direction: DirectionResult
) -> None:
    """The migrated model_runs table takes the rows; the INSERT through loaders.run_query."""
    from infra.postgres_roles import create_warehouse_schema
    from loaders import connect_warehouse, run_query

    card = {**direction.card, "version": 4}
    rows = model_run_rows(card, 4)
    assert {row["scorer"] for row in rows} == {"model", "always_up", "yesterday_sign"}
    assert all(set(row) == {name for name, _ in MODEL_RUNS_COLUMNS} for row in rows)
    schema = f"models_{uuid.uuid4().hex[:12]}"
    create_warehouse_schema(stack, schema)
    try:
        with connect_warehouse(
            stack.model_copy(update={"warehouse": "postgres"}), schema=schema
        ) as w:
            w.migrate()
        run_query(stack, model_runs_insert_sql(rows), schema, write=True)
        _, found = run_query(
            stack,
            "SELECT part, scorer, metric, value, period_start, data_fingerprint FROM model_runs"
            " WHERE part = 'test' AND scorer = 'model' AND metric = 'accuracy'",
            schema,
        )
        assert len(found) == 1
        _, _, _, value, start, fingerprint = found[0]
        assert value == direction.card["metrics"]["test"]["model"]["accuracy"]
        assert start.isoformat() == direction.card["ranges"]["test"][0]
        assert fingerprint == direction.card["data_fingerprint"]
        _, count = run_query(stack, "SELECT COUNT(*) FROM model_runs", schema)
        assert count[0][0] == len(rows)
    finally:
        drop_schema(stack, schema)


def test_the_create_is_conditional_even_when_the_check_misses(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trainers checking at the same instant: If-None-Match: * refuses the second
    (the stack's S3 honours it)."""
    key = f"{MODELS_PREFIX}/direction/v1/model.joblib"
    assert registry._create(key, b"first")
    monkeypatch.setattr(registry, "_exists", lambda key: False)
    assert not registry._create(key, b"second")
    assert _object(registry, key) == b"first"
