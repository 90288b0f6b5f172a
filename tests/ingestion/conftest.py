"""Fixtures of the ingestion tests: Yahoo answers replayed from fixtures/, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


class _RecordedResponse:
    def __init__(self, url: str, body: dict, status: int) -> None:
        self.url = url
        self.status_code = status
        self.ok = status < 400
        self.reason = "OK" if self.ok else "Not Found"
        self.text = json.dumps(body)
        self._body = body

    def json(self) -> dict:
        return self._body

    def raise_for_status(self) -> None:
        from yfinance._http import HTTPError

        if not self.ok:
            raise HTTPError(f"HTTP Error {self.status_code}: {self.reason}", 0, self)


@pytest.fixture
def yahoo_replay(monkeypatch):
    """Serve fixture bodies by symbol; unknown symbols get Yahoo's 404. Yields the call log."""
    import yfinance.cache
    import yfinance.data

    routes = {
        "AAPL": ("chart_AAPL_1d.json", 200),
        "META": ("chart_META_1m.json", 200),
        "WEEKEND": ("chart_AAPL_empty.json", 200),
    }
    calls: list[str] = []

    def get(self, url, params=None, timeout=30):
        calls.append(url)
        symbol = url.rstrip("/").rsplit("/", 1)[-1]
        name, status = routes.get(symbol, ("chart_NOSUCH_404.json", 404))
        return _RecordedResponse(url, json.loads((FIXTURES / name).read_text()), status)

    monkeypatch.setattr(yfinance.data.YfData, "get", get)
    monkeypatch.setattr(yfinance.data.YfData, "cache_get", get)
    # Keep yfinance's on-disk time-zone cache out of the test.
    monkeypatch.setattr(yfinance.cache, "get_tz_cache", yfinance.cache._TzCacheDummy)
    return calls
