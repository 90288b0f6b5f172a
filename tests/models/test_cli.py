"""`train direction|stress` and the help of `serve`, as commands (`python -m cli.models`,
the same commands `stocklake train` / `stocklake serve` register), on a private schema
and bucket; the metrics land in a `model_runs` table shaped as MODEL_RUNS_COLUMNS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from models.registry import ModelRegistry
from stocklake.settings import Settings

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKE_BUCKET": settings.lake_bucket, "WAREHOUSE": "postgres"}
    return subprocess.run(
        [sys.executable, "-m", "cli.models", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def model_runs(warehouse_schema: str) -> str:
    """The private schema, migrated: model_runs is one of its tables (migration 6)."""
    return warehouse_schema


def test_train_direction_then_stress(lake_settings: Settings, model_runs: str) -> None:
    done = _run(lake_settings, "train", "direction", "--schema", model_runs)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    for word in ("direction v1", "always_up", "yesterday_sign", "accuracy", "roc_auc"):
        assert word in out, done.stdout
    assert "rows in model_runs" in out

    stress = _run(lake_settings, "train", "stress", "--schema", model_runs, "--json")
    assert stress.returncode == 0, stress.stderr
    cards = [json.loads(line) for line in stress.stdout.splitlines() if line.startswith("{")]
    assert [card["name"] for card in cards] == ["stress_intraday", "stress_daily"]
    assert all(
        card["version"] == 1 and "rows in model_runs" in card["model_runs"] for card in cards
    )

    registry = ModelRegistry.from_settings(lake_settings)
    assert registry.names() == ["direction", "stress_daily", "stress_intraday"]
    with psycopg.connect(lake_settings.postgres_dsn(), autocommit=True) as conn:
        found = conn.execute(
            sql.SQL("SELECT model_name, COUNT(*) FROM {}.model_runs GROUP BY 1 ORDER BY 1").format(
                sql.Identifier(model_runs)
            )
        ).fetchall()
    assert [name for name, _ in found] == ["direction", "stress_daily", "stress_intraday"]


def test_a_bad_stress_setting_is_a_clear_error(lake_settings: Settings, model_runs: str) -> None:
    done = _run(
        lake_settings, "train", "stress", "--kind", "daily", "--drop-pct", "90",
        "--schema", model_runs, "--no-record",
    )  # fmt: skip
    assert done.returncode == 1
    assert "no drop of 90.0%" in done.stderr


def test_serve_help_and_a_missing_model(lake_settings: Settings) -> None:
    done = _run(lake_settings, "serve", "--help")
    assert done.returncode == 0 and "--version" in done.stdout and "--port" in done.stdout
    missing = _run(lake_settings, "serve", "--model", "nothing_here", "--port", "1")
    assert missing.returncode == 1
    assert "no model 'nothing_here'" in missing.stderr


def test_the_summary_names_the_best_scorer_per_metric(direction) -> None:
    from cli.models import best_scorers

    card = direction.card
    best = best_scorers(card)
    test = card["metrics"]["test"]
    assert test[best["accuracy"]]["accuracy"] == max(v["accuracy"] for v in test.values())
    assert test[best["log_loss"]]["log_loss"] == min(v["log_loss"] for v in test.values())
