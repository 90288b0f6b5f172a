"""Dataset fingerprints and the duplicate-ingest decision (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingestion.fingerprint import (
    DuplicateIngestError,
    decide_delivery,
    fingerprint_bars,
    offsets_landed,
)
from ingestion.sources import collect_historical
from stocklake.governance import Delivery

APPLE = Path(__file__).resolve().parents[2] / "data" / "daily" / "apple.csv"


@pytest.fixture(scope="module")
def bars() -> list:
    return collect_historical("csv", file=APPLE, symbol="AAPL").bars


def test_the_same_file_has_the_same_fingerprint_in_any_order_and_any_run(bars) -> None:
    again = [bar.model_copy(update={"ingested_at": datetime.now(UTC)}) for bar in bars]
    first = fingerprint_bars(bars, "csv")
    assert fingerprint_bars(list(reversed(again)), "csv") == first
    assert (first.records, first.symbols, first.interval) == (505, ("AAPL",), "1d")
    assert len(first.sha256) == 64


def test_any_change_of_data_or_description_changes_it(bars) -> None:
    first = fingerprint_bars(bars, "csv").sha256
    changed = [bars[0].model_copy(update={"volume": bars[0].volume + 1}), *bars[1:]]
    assert fingerprint_bars(changed, "csv").sha256 != first
    assert fingerprint_bars(bars[:-1], "csv").sha256 != first
    assert fingerprint_bars(bars, "yfinance").sha256 != first


def test_a_second_sending_is_refused_naming_the_earlier_run(bars) -> None:
    fingerprint = fingerprint_bars(bars, "csv")
    earlier = [{"run_id": "cli-20240101T000000-1", "sent_at": "2024-01-01 00:00:00+00:00"}]

    def decide(**flags) -> Delivery:
        options = {"force": False, "scheduled": False, **flags}
        return decide_delivery(fingerprint, earlier, landed=lambda row: True, **options)

    assert decide_delivery(fingerprint, [], force=False, scheduled=False, landed=None) == (
        Delivery.FIRST
    )
    with pytest.raises(DuplicateIngestError, match=r"cli-20240101T000000-1 .* and landed"):
        decide()
    assert decide(force=True) == Delivery.FORCED
    assert decide(scheduled=True) == Delivery.REDELIVERY


def test_offsets_have_landed_only_below_the_committed_offset() -> None:
    sent = {"0": [10, 19], "2": [5, 5]}
    assert offsets_landed(sent, {0: 20, 2: 6})
    assert not offsets_landed(sent, {0: 19, 2: 6})
    assert not offsets_landed(sent, {0: 20})
    assert not offsets_landed({}, {0: 20})
