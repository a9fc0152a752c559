"""`breadthflow breadth compute` end to end through the console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from breadthflow.indicators.breadth import BREADTH_COLUMNS
from tests.cli._run import assert_one_line_error, run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")


@pytest.fixture
def medium(capsys) -> None:
    """The demo_medium universe's sample bars in this test's lake."""
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--universe", "demo_medium",
        *SAMPLE, "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err


def breadth(capsys, *args: str):
    return run_cli(capsys, "breadth", "compute", *args)


def test_json_has_every_column_for_every_date(capsys, medium):
    result = breadth(capsys, "--universe", "demo_medium", *SAMPLE, "--hl-window", "50",
                     "--format", "json")  # fmt: skip
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert len(rows) == 245  # every session of the sample year
    assert all(list(row) == list(BREADTH_COLUMNS) for row in rows)
    assert rows[0]["date"] == "2009-08-21" and rows[-1]["date"] == "2010-08-20"
    assert rows[0]["advances"] is None and rows[1]["advances"] is not None
    assert rows[60]["new_highs"] is not None and rows[-1]["hl_index"] is not None
    assert all(r["pct_above_sma200"] is None for r in rows[:199])


def test_csv_matches_json(capsys, medium):
    args = ("--universe", "demo_medium", *SAMPLE, "--hl-window", "50")
    as_json = json.loads(breadth(capsys, *args, "--format", "json").out)
    result = breadth(capsys, *args, "--format", "csv")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert lines[0].split(",") == list(BREADTH_COLUMNS)
    assert len(lines) == 1 + len(as_json)


def test_table_shows_the_last_rows_and_says_so(capsys, medium):
    result = breadth(capsys, "--universe", "demo_medium", *SAMPLE, "--hl-window", "50")
    assert result.code == 0, result.err
    assert "2010-08-20" in result.out and "2009-08-21" in result.out  # title range
    assert "last 20 of 245 dates" in result.out
    assert "--format json|csv" in result.out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_output_file_holds_the_whole_table(capsys, medium, tmp_path: Path, suffix: str):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / f"breadth{suffix}"
    result = breadth(capsys, "--universe", "demo_medium", *SAMPLE, "--hl-window", "50",
                     "--output", str(target), "--format", "json")  # fmt: skip
    assert result.code == 0, result.err
    assert "wrote 245 dates" in result.err
    written = (
        pl.read_csv(target, try_parse_dates=True) if suffix == ".csv" else (pl.read_parquet(target))
    )
    assert written.columns == list(BREADTH_COLUMNS) and written.height == 245
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_symbols_list_works_like_a_universe(capsys, medium):
    result = breadth(capsys, "--symbols", "AAPL,MSFT,XOM", *SAMPLE, "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    compared = [r["advances"] + r["declines"] + r["unchanged"] for r in rows[1:]]
    # AAPL and MSFT miss a few sessions of the sample file; on those days fewer compare.
    assert max(compared) == 3 and compared.count(3) > 230


def test_range_without_data_is_one_line_error(capsys, medium):
    result = breadth(capsys, "--universe", "demo_medium", "--start", "2015-01-01",
                     "--end", "2015-06-30")  # fmt: skip
    assert_one_line_error(
        result, "no 1d bars stored for universe 'demo_medium'", "breadthflow data fetch"
    )


def test_fewer_than_two_symbols_with_data_is_one_line_error(capsys, medium):
    result = breadth(capsys, "--symbols", "AAPL,ZZZZ", *SAMPLE)
    assert_one_line_error(result, "at least 2 symbols", "AAPL")


def test_hl_window_below_two_is_one_line_error(capsys, medium):
    result = breadth(capsys, "--universe", "demo_medium", *SAMPLE, "--hl-window", "1")
    assert_one_line_error(result, "high/low window 1", ">= 2")


def test_bad_output_suffix_is_refused_before_any_work(capsys, tmp_path: Path):
    result = breadth(capsys, "--universe", "demo_medium", *SAMPLE,
                     "--output", str(tmp_path / "b.xlsx"))  # fmt: skip
    assert_one_line_error(result, "b.xlsx", ".csv or .parquet")


def test_symbols_and_universe_together_are_refused(capsys):
    result = breadth(capsys, "--universe", "demo_medium", "--symbols", "AAPL", *SAMPLE)
    assert_one_line_error(result, "exactly one")
