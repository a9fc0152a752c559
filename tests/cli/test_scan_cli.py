"""`breadthflow scan …` end to end through the console entry point, on the sample."""

from __future__ import annotations

import json

import polars as pl
import pytest

from breadthflow.data.providers.sample import load_sample
from breadthflow.indicators.technical import per_symbol, sma
from tests.cli._run import assert_one_line_error, run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")
MEDIUM = ("--universe", "demo_medium")
DEMO_MEDIUM = [
    "AAPL", "MSFT", "JPM", "XOM", "JNJ", "PG", "GE", "WMT", "IBM", "INTC", "CSCO", "KO", "PFE",
    "CVX", "BAC", "HD", "MRK", "T", "VZ", "ORCL",
]  # fmt: skip


@pytest.fixture
def medium(capsys) -> None:
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--universe", "demo_medium",
        *SAMPLE, "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err


def scan(capsys, *args: str):
    return run_cli(capsys, "scan", *args)


def as_json(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def expected_above_sma(n: int, start: str, end: str) -> set[tuple[str, str]]:
    """The reference: close above its n-day SMA, from the whole stored history."""
    bars = load_sample().filter(pl.col("symbol").is_in(DEMO_MEDIUM)).sort("symbol", "date")
    marked = bars.with_columns(per_symbol(sma(pl.col("close"), n)).alias("sma"))
    hits = marked.filter(
        (pl.col("close") > pl.col("sma"))
        & pl.col("date").is_between(pl.lit(start).str.to_date(), pl.lit(end).str.to_date())
    )
    return {(s, str(d)) for s, d in hits.select("symbol", "date").iter_rows()}


def test_scan_finds_the_matches_and_records_the_scan(capsys, medium):
    found = as_json(scan(capsys, "close > sma(close, 50)", *MEDIUM, "--start", "2010-06-01",
                         "--end", "2010-06-30", "--format", "json"))  # fmt: skip

    got = {(m["symbol"], m["date"]) for m in found["matches"]}
    assert got == expected_above_sma(50, "2010-06-01", "2010-06-30")
    assert found["summary"]["matches"] == len(got) > 0
    assert found["summary"]["processed"] == 20 and found["summary"]["errors"] == 0
    assert "sma(close, 50)" in found["matches"][0]
    listed = as_json(scan(capsys, "list", "--format", "json"))
    assert [row["id"] for row in listed] == [found["id"]]
    shown = as_json(scan(capsys, "show", str(found["id"]), "--format", "json"))
    assert {(m["symbol"], m["date"]) for m in shown["matches"]} == got


def test_warm_up_makes_the_first_day_match_like_a_longer_scan(capsys, medium):
    one_day = as_json(scan(capsys, "close > sma(close, 50)", *MEDIUM, "--on", "2010-06-01",
                           "--format", "json"))  # fmt: skip
    longer = as_json(scan(capsys, "close > sma(close, 50)", *MEDIUM, "--start", "2010-05-01",
                          "--end", "2010-06-01", "--format", "json"))  # fmt: skip

    day = {m["symbol"] for m in one_day["matches"]}
    assert day == {m["symbol"] for m in longer["matches"] if m["date"] == "2010-06-01"}
    assert day == {s for s, _ in expected_above_sma(50, "2010-06-01", "2010-06-01")}


def test_latest_and_limit(capsys, medium):
    args = ("close > sma(close, 20)", *MEDIUM, *SAMPLE, "--format", "json")
    latest = as_json(scan(capsys, *args, "--latest"))["matches"]
    limited = as_json(scan(capsys, *args, "--limit", "7"))["matches"]

    assert len({m["symbol"] for m in latest}) == len(latest)
    assert len(limited) == 7
    assert [m["date"] for m in limited] == sorted((m["date"] for m in limited), reverse=True)


def test_breadth_series_can_be_used(capsys, medium):
    found = as_json(scan(capsys, "pct_above_sma50 > 60 and close > close[1]", *MEDIUM,
                         *SAMPLE, "--hl-window", "50", "--format", "json"))  # fmt: skip
    assert found["summary"]["errors"] == 0 and found["summary"]["matches"] > 0


def test_csv_and_table_output(capsys, medium):
    csv = scan(capsys, "close > sma(close, 50)", *MEDIUM, "--on", "2010-06-01", "--format", "csv")
    header, *lines = csv.out.strip().splitlines()
    assert header.startswith("symbol,date") and len(lines) > 0
    table = scan(capsys, "close > sma(close, 50)", *MEDIUM, "--on", "2010-06-01")
    assert table.code == 0 and "matches in" in table.out and "scan #" in table.out


def test_check_validates_without_running(capsys):
    checked = as_json(scan(capsys, "check", "rsi(close, 14) < 30 and volume > 1e6",
                           "--format", "json"))  # fmt: skip
    assert checked["valid"] is True and checked["warmup_bars"] >= 14


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("check", "smaa(close, 5) > 1"), ("unknown function 'smaa'", "1:1", "sma")),
        (("check", "close[-1] > close"), ("close[-1]", "future")),
        (("check", "close >"), ("1:",)),
        (("check", "__import__('os').system('x')"), ("1:",)),
        (("close > 1", *MEDIUM), ("--start",)),
        (("close > 1", *MEDIUM, "--on", "2010-06-01", "--start", "2010-06-01"), ("--on",)),
        (("close > 1", *MEDIUM, "--start", "2010-06-30", "--end", "2010-06-01"), ("after",)),
        (("close > 1", "--universe", "nowhere", "--on", "2010-06-01"), ("nowhere",)),
        (("close > 1", *MEDIUM, "--on", "2010-06-01", "--limit", "0"), ("limit",)),
        (("show", "99"), ("no scan with id 99",)),
    ],
)
def test_bad_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(scan(capsys, *args), *fragments)
    assert as_json(scan(capsys, "list", "--format", "json")) == []


def test_missing_bars_are_per_symbol_errors_not_a_failed_scan(capsys, medium):
    found = as_json(scan(capsys, "close > 1", "--symbols", "AAPL,ZZZZ", "--on", "2010-06-01",
                         "--format", "json"))  # fmt: skip
    assert [e["symbol"] for e in found["errors"]] == ["ZZZZ"]
    assert {m["symbol"] for m in found["matches"]} == {"AAPL"}
    assert found["summary"]["status"] == "partial"
