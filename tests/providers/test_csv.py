"""The csv provider: a folder of <SYMBOL>.csv files, with errors that point at the line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from breadthflow.core.config import get_settings
from breadthflow.core.errors import DataError, InvalidInputError, NotFoundError
from breadthflow.core.models import IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, get_provider
from breadthflow.data.providers.synthetic import generate_bars
from breadthflow.data.quality import provider_schema, validate_bars

HEADER = "date,open,high,low,close,volume\n"
ALL = (dt.date(1990, 1, 1), dt.date(2030, 12, 31))


@pytest.fixture
def prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder ./prices (the tests run inside tmp_path, so messages read
    'prices/AAPL.csv')."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "prices"
    folder.mkdir()
    return folder


def csv_provider(path: str = "prices") -> Provider:
    return get_provider("csv", get_settings(), {"path": path})


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_round_trip_of_a_written_file(prices: Path) -> None:
    bars = generate_bars(["AAPL"], dt.date(2023, 1, 1), dt.date(2023, 6, 30))
    bars.select(
        "date", "open", "high", "low", "close", "volume", pl.col("close").alias("adj_close")
    ).write_csv(prices / "AAPL.csv")

    got = csv_provider().fetch("AAPL", Timeframe.D1, *ALL)

    assert got.frame.equals(bars)
    assert got.issues == []


def test_headers_are_matched_without_case_and_extra_columns_ignored(prices: Path) -> None:
    write(
        prices,
        "msft.csv",
        "\ufeffDate, Open ,HIGH,Low,Close,Adj Close,Volume,Dividends\n"
        "20240102,10,11,9,10.5,10.4,1000,0\n"
        "2024-01-03,10.5,12,10,11.5,11.4,2000,0\n",
    )

    frame = csv_provider().fetch("MSFT", Timeframe.D1, *ALL).frame

    assert tuple(frame.columns) == PROVIDER_COLUMNS
    assert frame.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert frame.rows() == [
        ("MSFT", dt.date(2024, 1, 2), 10.0, 11.0, 9.0, 10.5, 1000.0, 1.0),
        ("MSFT", dt.date(2024, 1, 3), 10.5, 12.0, 10.0, 11.5, 2000.0, 1.0),
    ]


def test_rows_are_sorted_and_filtered_to_the_range(prices: Path) -> None:
    write(
        prices,
        "IBM.csv",
        HEADER + "2024-01-04,1,2,1,2,5\n2024-01-02,1,2,1,2,5\n2024-01-03,1,2,1,2,5\n",
    )
    frame = (
        csv_provider().fetch("IBM", Timeframe.D1, dt.date(2024, 1, 3), dt.date(2024, 1, 9)).frame
    )
    assert frame["date"].to_list() == [dt.date(2024, 1, 3), dt.date(2024, 1, 4)]


def test_bad_value_names_file_line_column_and_value(prices: Path) -> None:
    lines = [f"2024-01-{d:02d},1,2,1,1.5,100" for d in range(1, 15)]  # lines 2-15
    lines.insert(8, "")  # a blank line still counts as a line of the file
    lines.append("2024-01-15,1,2,1,abc,100")  # header + 14 rows + 1 blank line → line 17
    write(prices, "AAPL.csv", HEADER + "\n".join(lines) + "\n")

    with pytest.raises(DataError) as caught:
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)

    assert str(caught.value) == "prices/AAPL.csv line 17: close 'abc' is not a number"


def test_bad_date_names_file_and_line(prices: Path) -> None:
    write(prices, "AAPL.csv", HEADER + "2024-01-02,1,2,1,1.5,100\n2024-13-02,1,2,1,1.5,100\n")
    with pytest.raises(
        DataError, match=r"^prices/AAPL.csv line 3: date '2024-13-02' is not a date"
    ):
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)


def test_missing_column_is_named(prices: Path) -> None:
    write(prices, "AAPL.csv", "date,open,high,low,close\n2024-01-02,1,2,1,1.5\n")
    with pytest.raises(DataError, match=r"^prices/AAPL.csv: missing column 'volume'"):
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)


def test_missing_date_column_is_named(prices: Path) -> None:
    write(prices, "AAPL.csv", "day,open,high,low,close,volume\n2024-01-02,1,2,1,1.5,9\n")
    with pytest.raises(DataError, match=r"^prices/AAPL.csv: no date column"):
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)


def test_empty_file_is_a_data_error(prices: Path) -> None:
    write(prices, "AAPL.csv", "")
    with pytest.raises(DataError, match=r"^prices/AAPL.csv is empty"):
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)


def test_missing_values_reach_validation_and_are_reported(prices: Path) -> None:
    write(
        prices,
        "AAPL.csv",
        HEADER + "2024-01-02,1,2,1,1.5,100\n2024-01-03,null,2,1,1.5,100\n2024-01-04,1,2,1,,100\n",
    )
    bars = csv_provider().fetch("AAPL", Timeframe.D1, *ALL)

    clean, issues = validate_bars(bars.frame, Timeframe.D1, "csv")

    assert clean["date"].to_list() == [dt.date(2024, 1, 2)]
    assert [(i.kind, i.date, i.detail) for i in issues] == [
        (IssueKind.ROW_REJECTED, dt.date(2024, 1, 3), "open is missing"),
        (IssueKind.ROW_REJECTED, dt.date(2024, 1, 4), "close is missing"),
    ]


def test_intraday_timestamps_are_read_as_utc(prices: Path) -> None:
    write(
        prices,
        "SPY.csv",
        "Timestamp,Open,High,Low,Close,Volume\n"
        "2024-01-02T14:30:00Z,1,2,1,1.5,100\n"
        "2024-01-02 09:35:00-05:00,1,2,1,1.5,100\n"
        "2024-01-02 14:40:00,1,2,1,1.5,100\n"
        "2024-01-03T14:30:00.000+00:00,1,2,1,1.5,100\n",
    )
    provider = csv_provider()

    frame = provider.fetch("SPY", Timeframe.M5, dt.date(2024, 1, 2), dt.date(2024, 1, 2)).frame

    assert frame.schema == pl.Schema(provider_schema(Timeframe.M5))
    assert frame["date"].to_list() == [
        dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 2, 14, 35, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 2, 14, 40, tzinfo=dt.UTC),
    ]


def test_a_daily_file_is_not_read_as_intraday(prices: Path) -> None:
    write(prices, "SPY.csv", HEADER + "2024-01-02,1,2,1,1.5,100\n")
    with pytest.raises(DataError, match="line 2: date '2024-01-02' is not an ISO-8601 timestamp"):
        csv_provider().fetch("SPY", Timeframe.M1, *ALL)


def test_known_symbols_are_the_valid_file_stems(prices: Path) -> None:
    for name in ("aapl.csv", "BRK.B.CSV", "my notes.csv", "readme.txt"):
        write(prices, name, HEADER)
    (prices / "sub.csv").mkdir()
    assert csv_provider().known_symbols() == ["AAPL", "BRK.B"]


def test_file_names_match_without_case(prices: Path) -> None:
    write(prices, "aapl.csv", HEADER + "2024-01-02,1,2,1,1.5,100\n")
    frame = csv_provider().fetch("AAPL", Timeframe.D1, *ALL).frame
    assert frame["symbol"].to_list() == ["AAPL"]


def test_two_files_for_one_symbol_are_an_error(prices: Path) -> None:
    write(prices, "aapl.csv", HEADER)
    write(prices, "AAPL.csv", HEADER)
    with pytest.raises(DataError, match="two files for AAPL"):
        csv_provider().fetch("AAPL", Timeframe.D1, *ALL)


def test_symbol_without_a_file_is_not_found(prices: Path) -> None:
    write(prices, "AAPL.csv", HEADER)
    with pytest.raises(NotFoundError, match=r"no file for symbol 'MSFT' .* expected MSFT.csv"):
        csv_provider().fetch("MSFT", Timeframe.D1, *ALL)


def test_path_option_is_required() -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_provider("csv", get_settings())
    assert str(caught.value) == "provider 'csv' needs a folder: --path DIR"


def test_folder_that_does_not_exist_is_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(NotFoundError, match=f"folder '{missing}' does not exist"):
        csv_provider(str(missing))


def test_a_file_instead_of_a_folder_is_refused(prices: Path) -> None:
    path = write(prices, "AAPL.csv", HEADER)
    with pytest.raises(InvalidInputError, match="is a file"):
        csv_provider(str(path))
