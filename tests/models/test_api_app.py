"""The app in-process (no server): what it refuses to serve, and a failing feature source."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pandas as pd
import pytest

from models.api import create_app
from models.data import FrameSource
from models.direction import DirectionResult
from models.registry import RegistryError
from models.stress import DAILY, train_stress


class _Registry:
    """Stands in for the lake: one model at version 1."""

    def __init__(self, model, card) -> None:
        self.model, self.card_ = model, {**card, "version": 1}

    def load(self, name: str, version: int | None):
        return self.model, self.card_

    def versions(self, name: str) -> list[int]:
        return [1]

    def card(self, name: str, version: int):
        return self.card_


class _Down(FrameSource):
    def history(self, symbol: str, day: date, rows: int) -> pd.DataFrame:
        raise ConnectionError("warehouse down")


def _post(app, body: dict) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/predict", json=body)

    return asyncio.run(call())


def test_a_stress_index_is_not_served(daily: pd.DataFrame) -> None:
    stress = train_stress(daily, DAILY)
    with pytest.raises(RegistryError, match="not a classifier"):
        create_app(_Registry(stress.index, stress.card), None, name=DAILY)


def test_without_a_source_and_with_a_failing_one(
    daily: pd.DataFrame, direction: DirectionResult
) -> None:
    registry = _Registry(direction.pipeline, direction.card)
    body = {"symbol": "AAPL", "date": "2020-11-02"}
    alone = _post(create_app(registry, None), body)
    assert alone.status_code == 422 and "no feature source" in alone.text
    down = _post(create_app(registry, _Down(daily)), body)
    assert down.status_code == 503 and "feature source failed" in down.text
    served = _post(create_app(registry, FrameSource(daily)), body)
    assert served.status_code == 200 and served.json()["version"] == 1
