"""The prediction API through real uvicorn processes (`python -m cli.models serve`, the
same command as `stocklake serve`) on 127.0.0.1: a private bucket with two versions and
a private warehouse schema holding the bundled daily_features."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest

from models.direction import (
    DIRECTION_FEATURES,
    HISTORY_ROWS,
    DirectionResult,
    features_at,
    train_direction,
)
from models.registry import ModelRegistry
from stocklake.settings import Settings
from tests.browser import chromium

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
DAY = date(2020, 11, 2)  # a Monday in the test period


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, settings: Settings, schema: str, version: int | None, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "cli.models", "serve", "--port", str(self.port)]
        command += ["--schema", schema]
        if version is not None:
            command += ["--version", str(version)]
        env = {
            **os.environ,
            "LAKE_BUCKET": settings.lake_bucket,
            "WAREHOUSE": "postgres",
            "BIND_HOST": "127.0.0.1",
        }
        self.log = log
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )

    def wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        pytest.fail(f"no /health within {START_TIMEOUT_S} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def published(
    lake_settings: Settings, daily: pd.DataFrame, direction: DirectionResult
) -> dict[int, DirectionResult]:
    """v1: trained on data up to October 2020; v2 (the latest): on everything."""
    registry = ModelRegistry.from_settings(lake_settings)
    older = train_direction(daily[daily["trade_date"] < date(2020, 10, 1)])
    assert registry.publish("direction", older.pipeline, older.card)["version"] == 1
    assert registry.publish("direction", direction.pipeline, direction.card)["version"] == 2
    return {1: older, 2: direction}


@pytest.fixture(scope="module")
def servers(
    lake_settings: Settings, warehouse_schema: str, published, tmp_path_factory
) -> Iterator[dict[str, Server]]:
    """Two servers started together: one pinned to v1, one on the latest."""
    logs = tmp_path_factory.mktemp("api")
    started = {
        "pinned": Server(lake_settings, warehouse_schema, 1, logs / "pinned.log"),
        "latest": Server(lake_settings, warehouse_schema, None, logs / "latest.log"),
    }
    try:
        for server in started.values():
            server.wait()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def api(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers["latest"].url, timeout=30) as client:
        yield client


def _expected(daily: pd.DataFrame, result: DirectionResult, symbol: str, day: date):
    rows = daily[(daily["symbol"] == symbol) & (daily["trade_date"] <= day)].tail(HISTORY_ROWS)
    values = features_at(rows)
    row = [[values[name] for name in DIRECTION_FEATURES]]
    return values, float(result.pipeline.predict_proba(row)[0, 1])


def test_health_models_and_docs(api: httpx.Client, published) -> None:
    health = api.get("/health").json()
    assert health["model"] == "direction" and health["version"] == 2
    assert health["training_range"] == published[2].card["training_range"]
    assert health["data_fingerprint"] == published[2].card["data_fingerprint"]
    listed = api.get("/models").json()
    assert listed["serving"] == 2
    assert [item["version"] for item in listed["versions"]] == [1, 2]
    assert listed["versions"][0]["training_range"] == published[1].card["training_range"]
    assert api.get("/docs").status_code == 200
    assert "/predict" in api.get("/openapi.json").json()["paths"]


def test_the_docs_page_renders_offline_in_a_browser(
    servers: dict[str, Server], tmp_path_factory
) -> None:
    """Chromium draws /docs from the project's own Swagger UI files (no CDN on this
    machine): every endpoint is listed, and nothing is fetched from elsewhere."""
    shots = tmp_path_factory.mktemp("api-docs")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{servers['latest'].url}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert {"/health", "/models", "/predict"} <= {path.strip() for path in paths}
        assert "Error" not in page.locator(".information-container").inner_text()
        page.screenshot(path=shots / "api-docs.png", full_page=True)
    outside = [url for url in requested if not url.startswith(servers["latest"].url)]
    assert outside == [], outside


def test_predict_by_symbol_and_date(api: httpx.Client, daily: pd.DataFrame, published) -> None:
    answer = api.post("/predict", json={"symbol": "AAPL", "date": DAY.isoformat()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    values, probability = _expected(daily, published[2], "AAPL", DAY)
    assert body["version"] == 2 and body["model"] == "direction"
    assert body["probability"] == pytest.approx(probability, rel=1e-12)
    assert body["class"] == int(probability >= 0.5)
    assert body["features"] == pytest.approx(values, rel=1e-12)
    index = api.post("/predict", json={"symbol": "^GSPC", "date": DAY.isoformat()})
    assert index.status_code == 200, index.text


def test_predict_by_values(api: httpx.Client, daily: pd.DataFrame, published) -> None:
    values, probability = _expected(daily, published[2], "TSLA", DAY)
    body = api.post("/predict", json={"features": values}).json()
    assert body["probability"] == pytest.approx(probability, rel=1e-12)
    assert body["symbol"] is None and body["version"] == 2
    integers = {name: round(value) for name, value in values.items()}  # ints are numbers
    assert api.post("/predict", json={"features": integers}).status_code == 200


def test_a_pinned_version_is_served(
    servers: dict[str, Server], daily: pd.DataFrame, published
) -> None:
    with httpx.Client(base_url=servers["pinned"].url, timeout=30) as pinned:
        assert pinned.get("/health").json()["version"] == 1
        assert pinned.get("/models").json()["serving"] == 1
        body = pinned.post("/predict", json={"symbol": "AAPL", "date": DAY.isoformat()}).json()
    _, probability = _expected(daily, published[1], "AAPL", DAY)
    _, latest = _expected(daily, published[2], "AAPL", DAY)
    assert body["version"] == 1
    assert body["probability"] == pytest.approx(probability, rel=1e-12)
    assert probability != latest


BAD_REQUESTS = {
    "unknown symbol": ({"symbol": "NOPE", "date": "2020-11-02"}, 404, "unknown symbol"),
    "a date without features (Sunday)": (
        {"symbol": "AAPL", "date": "2020-11-01"},
        404,
        "no daily_features row for AAPL on 2020-11-01",
    ),
    "a date after the data": ({"symbol": "AAPL", "date": "2030-01-02"}, 404, "no daily_features"),
    "too little history (the first day)": (
        {"symbol": "AAPL", "date": "2019-01-02"},
        422,
        "too little history",
    ),
    "not a symbol": ({"symbol": "aa pl;--", "date": "2020-11-02"}, 422, "not a symbol"),
    "symbol without date": ({"symbol": "AAPL"}, 422, "both symbol and date"),
    "empty request": ({}, 422, "empty request"),
    "both": (
        {"symbol": "AAPL", "date": "2020-11-02", "features": {"x": 1.0}},
        422,
        "not both",
    ),
    "a missing feature": (
        {"features": {name: 0.5 for name in DIRECTION_FEATURES[1:]}},
        422,
        f"missing {DIRECTION_FEATURES[0]}",
    ),
    "an unknown feature": (
        {"features": {**{name: 0.5 for name in DIRECTION_FEATURES}, "bogus": 1.0}},
        422,
        "unknown bogus",
    ),
    "a string feature value": (
        {"features": {**{name: 0.5 for name in DIRECTION_FEATURES}, "drawdown_pct": "-3"}},
        422,
        "drawdown_pct",
    ),
    "a boolean feature value": (
        {"features": {**{name: 0.5 for name in DIRECTION_FEATURES}, "drawdown_pct": True}},
        422,
        "drawdown_pct",
    ),
    "a null feature value": (
        {"features": {**{name: 0.5 for name in DIRECTION_FEATURES}, "drawdown_pct": None}},
        422,
        "drawdown_pct",
    ),
    "a bad date": ({"symbol": "AAPL", "date": "2020-13-45"}, 422, "date"),
    "a number as date": ({"symbol": "AAPL", "date": 20201102}, 422, "date"),
    "a number as symbol": ({"symbol": 42, "date": "2020-11-02"}, 422, "symbol"),
    "an unknown field": ({"symbol": "AAPL", "date": "2020-11-02", "when": 1}, 422, "when"),
    "features not an object": ({"features": [1, 2, 3]}, 422, "features"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_clear_4xx(api: httpx.Client, case: str) -> None:
    body, status, message = BAD_REQUESTS[case]
    answer = api.post("/predict", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_feature_values_are_refused(api: httpx.Client, literal: str) -> None:
    fields = ", ".join(f'"{name}": 0.5' for name in DIRECTION_FEATURES[1:])
    raw = f'{{"features": {{"{DIRECTION_FEATURES[0]}": {literal}, {fields}}}}}'
    answer = api.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert DIRECTION_FEATURES[0] in answer.text or "finite" in answer.text


def test_malformed_json_and_wrong_methods(api: httpx.Client) -> None:
    broken = api.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert api.get("/predict").status_code == 405
    assert (
        api.post("/predict", content=b"", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_serve_in_the_background_and_stop(
    lake_settings: Settings, warehouse_schema: str, published
) -> None:
    port = str(_free_port())
    env = {**os.environ, "LAKE_BUCKET": lake_settings.lake_bucket, "WAREHOUSE": "postgres"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cli.models", "serve", "--port", port, *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    log = lake_settings.state_path / "models" / f"api-{port}.log"
    try:
        started = run("--background", "--version", "1", "--schema", warehouse_schema)
        assert started.returncode == 0, started.stderr + started.stdout
        assert f"http://127.0.0.1:{port}" in started.stdout and "direction v1" in started.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["version"] == 1
        assert "already running" in run("--background").stdout
    finally:
        stopped = run("--stop")
        log.unlink(missing_ok=True)
    assert stopped.returncode == 0 and "model API stopped" in stopped.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert not (lake_settings.state_path / "models" / f"api-{port}.pid").exists()
    assert "no model API" in run("--stop").stdout
