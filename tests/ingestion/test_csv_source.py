"""CSV source: the real bundled files' quirks, user files with a mapping, and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingestion.csv_source import (
    BUNDLED_FILES,
    CsvError,
    bundled_files_for,
    load_bundled,
    parse_bar_time,
    parse_column_mapping,
    parse_volume,
    read_csv_bars,
)
from ingestion.market_hours import DateRange
from tests.streaming.records import parse_record

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _by_date(bars):
    return {bar.ts.date(): bar for bar in bars}


def test_bundled_files_exist_with_attribution():
    for bundled in BUNDLED_FILES:
        assert bundled.path.is_file(), bundled.path
    data = BUNDLED_FILES[0].path.parents[1]
    assert "stefmolin" in (data / "README.md").read_text()
    assert "MIT License" in (data / "LICENSE").read_text()


def test_daily_known_values_and_float_volume():
    (apple,) = load_bundled(["AAPL"], "1d", None, NOW)
    bars = _by_date(apple.bars)
    assert len(apple.bars) == 505
    first, last = bars[date(2019, 1, 2)], bars[date(2020, 12, 31)]
    assert last.close == pytest.approx(132.69, abs=0.005)
    assert first.close == pytest.approx(39.48, abs=0.005)  # split-adjusted, as README says
    assert first.volume == 148158800 and isinstance(first.volume, int)  # "148158800.0"
    assert first.adj_close == pytest.approx(38.5626, abs=1e-4)  # dividend-adjusted differs
    # Daily bars are stamped 00:00 UTC of the trade date (the contract).
    assert first.ts == datetime(2019, 1, 2, tzinfo=UTC)
    assert {bar.source for bar in apple.bars} == {"csv"}


def test_sp500_is_the_index_symbol():
    (index,) = load_bundled(["^GSPC"], "1d", None, NOW)
    assert _by_date(index.bars)[date(2020, 12, 31)].close == pytest.approx(3756.07, abs=0.005)


def test_facebook_gap_is_reported_not_filled():
    (meta,) = load_bundled(["META"], "1d", None, NOW)
    dates = {bar.ts.date() for bar in meta.bars}
    assert len(meta.bars) == 504
    assert date(2020, 10, 23) not in dates
    assert meta.gaps == {"META": [date(2020, 10, 23)]}
    (apple,) = load_bundled(["AAPL"], "1d", None, NOW)
    assert apple.gaps == {}


def test_intraday_dash_times_are_eastern_converted_to_utc():
    (minutes,) = load_bundled(["META"], "1m", None, NOW)
    first = minutes.bars[0]
    # 2019-05-20 09-30 in New York (EDT, UTC-4) is 13:30 UTC.
    assert first.ts == datetime(2019, 5, 20, 13, 30, tzinfo=UTC)
    assert first.open == pytest.approx(181.62)
    assert first.volume == 159049
    assert len(minutes.bars) == 1951
    assert all(bar.interval == "1m" for bar in minutes.bars)


def test_range_is_start_inclusive_end_exclusive():
    days = DateRange(date(2020, 12, 28), date(2020, 12, 31))
    (apple,) = load_bundled(["AAPL"], "1d", days, NOW)
    assert [bar.ts.date() for bar in apple.bars] == [
        date(2020, 12, 28),
        date(2020, 12, 29),
        date(2020, 12, 30),
    ]


def test_bundled_symbol_errors_name_the_symbol():
    with pytest.raises(CsvError, match=r"no bundled 1d CSV for MSFT, NVDA"):
        bundled_files_for(["AAPL", "MSFT", "NVDA"], "1d")
    with pytest.raises(CsvError, match=r"no bundled CSV has 5m bars"):
        bundled_files_for(["AAPL"], "5m")
    with pytest.raises(CsvError, match=r"apple.csv has AAPL 1d bars from 2019-01-02 to 2020-12-31"):
        load_bundled(["AAPL"], "1d", DateRange(date(2024, 1, 1), date(2024, 2, 1)), NOW)


def test_every_bundled_bar_is_valid_on_the_wire():
    for result in load_bundled(None, "1d", None, NOW):
        for bar in result.bars[:50]:
            assert parse_record("historical", bar.to_json()) == bar


def test_user_csv_with_mapping_symbol_column_and_other_order(tmp_path: Path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "Ticker,Vol,Time,C,O,H,L\n"
        "ibm,1200.0,2024-03-01T10:00:00,101.5,100.0,102.0,99.5\n"
        "ibm,900,2024-03-01T10:05:00,101.0,101.5,101.6,100.9\n"
        "ibm,1000,2024-03-04T10:00:00,102.0,101.0,102.5,100.5\n"
    )
    columns = parse_column_mapping("date=Time,open=O,high=H,low=L,close=C,volume=Vol,symbol=Ticker")
    result = read_csv_bars(
        path,
        interval="5m",
        columns=columns,
        tz=ZoneInfo("Europe/Berlin"),
        days=DateRange(date(2024, 3, 1), date(2024, 3, 2)),
        ingested_at=NOW,
    )
    assert result.rows_read == 3
    assert [bar.symbol for bar in result.bars] == ["IBM", "IBM"]
    # 10:00 in Berlin (CET, UTC+1) is 09:00 UTC.
    assert result.bars[0].ts == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert result.bars[0].volume == 1200


def test_header_names_are_matched_without_mapping(tmp_path: Path):
    path = tmp_path / "yahoo_export.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2021-01-04,10,11,9,10.5,10.4,500\n")
    result = read_csv_bars(path, interval="1d", symbol="XYZ", ingested_at=NOW)
    (bar,) = result.bars
    assert (bar.symbol, bar.adj_close, bar.ts) == ("XYZ", 10.4, datetime(2021, 1, 4, tzinfo=UTC))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2021-01-04,10,11,9,10.5,abc", r"bad.csv:3: column 'volume' \(volume\)"),
        ("2021-01-04,10,11,9,10.5,12.5", r"bad.csv:3: .*not a whole number of shares"),
        ("2021-01-04,10,9,11,10.5,100", r"bad.csv:3: .*OHLC inconsistent"),
        ("2021-01-04,,11,9,10.5,100", r"bad.csv:3: column 'open' \(open\) is empty"),
        ("04/01/2021,10,11,9,10.5,100", r"bad.csv:3: column 'date' \(date\)"),
        ("2021-01-04,10,11,9,nan,100", r"bad.csv:3: column 'close' \(close\).*finite"),
        ("2021-01-01,10,11,9,10.5,100", r"bad.csv:3: duplicate bar XYZ .* \(first on line 2\)"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path: Path, row: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(f"date,open,high,low,close,volume\n2021-01-01,10,11,9,10.5,100\n{row}\n")
    with pytest.raises(CsvError, match=message):
        read_csv_bars(path, interval="1d", symbol="XYZ", ingested_at=NOW)


def test_file_level_errors(tmp_path: Path):
    missing = tmp_path / "missing_columns.csv"
    missing.write_text("when,open,high,low,close\n2021-01-01,1,1,1,1\n")
    with pytest.raises(CsvError, match=r"no column for date, volume.*--columns"):
        read_csv_bars(missing, interval="1d", symbol="X", ingested_at=NOW)
    with pytest.raises(CsvError, match=r"--columns maps volume to 'Vol'"):
        read_csv_bars(
            missing, interval="1d", symbol="X", columns={"volume": "Vol"}, ingested_at=NOW
        )
    with pytest.raises(CsvError, match=r"no symbol column; name the symbol with --symbol"):
        read_csv_bars(
            missing, interval="1d", columns={"date": "when", "volume": "close"}, ingested_at=NOW
        )
    with pytest.raises(CsvError, match=r"nowhere.csv: cannot open"):
        read_csv_bars(tmp_path / "nowhere.csv", interval="1d", symbol="X", ingested_at=NOW)
    with pytest.raises(CsvError, match=r"unknown field 'vwap'"):
        parse_column_mapping("date=Date,vwap=VWAP")


def test_time_parsing_rules():
    eastern = ZoneInfo("America/New_York")
    assert parse_bar_time("2019-05-20 09-30", "1m") == datetime(2019, 5, 20, 13, 30, tzinfo=UTC)
    # Winter: EST is UTC-5.
    assert parse_bar_time("2019-12-02 09-30", "1m") == datetime(2019, 12, 2, 14, 30, tzinfo=UTC)
    assert parse_bar_time("2019-05-20T09:30:00Z", "1m") == datetime(2019, 5, 20, 9, 30, tzinfo=UTC)
    # A daily bar keeps its exchange-local trade date even when written with a time.
    assert parse_bar_time("2019-05-20 23:00:00-04:00", "1d", eastern) == datetime(
        2019, 5, 20, tzinfo=UTC
    )
    assert parse_bar_time("20/05/2019", "1d", eastern, "%d/%m/%Y") == datetime(
        2019, 5, 20, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="no time of day"):
        parse_bar_time("2019-05-20", "1m")
    assert parse_volume("148158800.0") == 148158800
    with pytest.raises(ValueError):
        parse_volume("1e400")


def test_a_holiday_is_an_error_unless_empty_is_allowed():
    from ingestion.csv_source import CsvNoBars
    from ingestion.sources import collect_historical

    christmas = {"start": date(2020, 12, 25), "end": date(2020, 12, 26)}
    with pytest.raises(CsvNoBars, match=r"apple.csv has AAPL 1d bars .* none in \[2020-12-25"):
        collect_historical("csv", symbols=["AAPL"], **christmas)
    batch = collect_historical("csv", symbols=["AAPL", "META"], allow_empty=True, **christmas)
    assert batch.bars == []
    assert [note.split(" has ")[0] for note in batch.notes] == [
        f"skipped {BUNDLED_FILES[0].path}",
        f"skipped {BUNDLED_FILES[3].path}",
    ]
    # One symbol's missing day is skipped, the others' bars still go.
    gap_day = {"start": date(2020, 10, 23), "end": date(2020, 10, 24)}
    batch = collect_historical("csv", symbols=["AAPL", "META"], allow_empty=True, **gap_day)
    assert [bar.symbol for bar in batch.bars] == ["AAPL"]


def test_gaps_in_a_user_file_are_found_in_any_year(tmp_path: Path):
    """Missing trading days are found against the exchange calendar, not the bundled files."""
    from datetime import timedelta

    from ingestion.sources import collect_historical

    holidays_2015 = {
        date(2015, 1, 1), date(2015, 1, 19), date(2015, 2, 16), date(2015, 4, 3),
        date(2015, 5, 25), date(2015, 7, 3), date(2015, 9, 7), date(2015, 11, 26),
        date(2015, 12, 25),
    }  # fmt: skip
    weekdays = [
        date(2015, 1, 1) + timedelta(days=n)
        for n in range(365)
        if (date(2015, 1, 1) + timedelta(days=n)).weekday() < 5
    ]
    missing = [day for day in weekdays if day not in holidays_2015][5::16][:15]
    assert len(missing) == 15
    rows = [
        f"{day},10,11,9,10.5,1000"
        for day in weekdays
        if day not in holidays_2015 and day not in missing
    ]
    path = tmp_path / "ibm_2015.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    batch = collect_historical("csv", file=str(path), symbol="IBM", start=date(2015, 1, 1))
    assert len(batch.bars) == 252 - 15
    # Weekends and the exchange's holidays (Good Friday, Thanksgiving...) are not gaps.
    assert batch.gaps == {"IBM": missing}
