"""Printed summaries are for people: seconds rounded, no rate when nothing was processed."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cli.figures import rate_text, seconds_text, value_text
from cli.land import summary_table
from cli.produce import _print_summary
from cli.spark import summary_lines
from ingestion.producer import ProduceSummary
from streaming.landing import LandSummary

SECONDS = 0.08375137199993787


def _text(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(renderable)
    return out.getvalue()


def test_figures() -> None:
    assert seconds_text(SECONDS) == "0.08 s"
    assert seconds_text(1234.5) == "1,234.50 s"
    assert rate_text(0, 5.0) == "-"
    assert rate_text(4, 0.0) == "-"
    assert rate_text(4, 5.0) == "0.8 records/s"
    assert rate_text(123_456, 2.0, "ticks") == "61,728 ticks/s"
    assert value_text("seconds", SECONDS) == "0.08 s"
    assert value_text("input_rows", 1951) == "1,951"
    assert value_text("dates_written", [f"2020-12-{d}" for d in range(21, 31)]) == (
        "2020-12-21, 2020-12-22 .. 2020-12-30 (10)"
    )


def test_produce_summary(capsys: pytest.CaptureFixture[str]) -> None:
    _print_summary(ProduceSummary(topic="bars", source="csv", seconds=SECONDS), as_json=False)
    printed = capsys.readouterr().out
    assert "0.08 s" in printed and "0.0837" not in printed
    assert "records/s" not in printed and "MB/s" not in printed

    busy = ProduceSummary(topic="bars", source="csv", records=500, bytes=10**6, seconds=2.0)
    _print_summary(busy, as_json=False)
    assert "250 records/s, 0.50 MB/s" in capsys.readouterr().out


def test_land_summary() -> None:
    idle = _text(summary_table(LandSummary("realtime", "ticks", "g", "lake", seconds=SECONDS)))
    assert "0.08 s" in idle and "0.0837" not in idle
    (rate,) = [line for line in idle.splitlines() if " rate " in line]
    assert rate.rstrip(" │").endswith(" -"), rate
    busy = LandSummary("realtime", "ticks", "g", "lake", records_in=300, landed=300, seconds=1.5)
    assert "200 records/s" in _text(summary_table(busy))


def test_spark_summary_rounds_seconds_and_shows_late_ticks() -> None:
    stream = {
        "trigger": "available-now",
        "queries": [
            {"window_size": "15m", "input_rows": 40, "late_rows_dropped": 2, "output_rows": 3},
            {"window_size": "1h", "input_rows": 40, "late_rows_dropped": 1, "output_rows": 1},
        ],
        "seconds": SECONDS,
        "input_rows": 40,
    }
    lines = summary_lines(stream)
    assert "seconds: 0.08 s" in lines
    assert "late rows dropped: 2" in lines  # every query reads every tick: the most, not a sum
    assert "15m windows: input rows 40, late rows dropped 2, output rows 3" in lines
    assert not any("0.0837" in line for line in lines)


def test_stream_summary_carries_its_late_ticks() -> None:
    from spark_jobs.stream import StreamSummary, WindowQuerySummary

    queries = [WindowQuerySummary("15m", late_rows_dropped=2), WindowQuerySummary("1h")]
    data = StreamSummary("available-now", queries, seconds=SECONDS).as_dict()
    assert data["late_rows_dropped"] == 2
    assert summary_lines(data).count("late rows dropped: 2") == 1
