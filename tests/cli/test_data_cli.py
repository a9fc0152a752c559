"""`breadthflow data …` end to end through the console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.cli._run import assert_one_line_error, run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")


def fetch_json(capsys, *args: str) -> dict:
    result = run_cli(capsys, "data", "fetch", "--format", "json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_fetch_sample_stores_bars_and_refetch_changes_no_row(capsys):
    first = fetch_json(capsys, "--provider", "sample", "--universe", "demo_small", *SAMPLE)
    assert first["symbols_stored"] == 8
    assert first["symbols_failed"] == 0
    assert first["rows_inserted"] == first["rows_received"] > 8 * 230
    assert first["first_date"] == "2009-08-21" and first["last_date"] == "2010-08-20"

    again = fetch_json(capsys, "--provider", "sample", "--universe", "demo_small", *SAMPLE)
    assert again["rows_inserted"] == 0
    assert again["rows_updated"] == 0
    assert again["rows_unchanged"] == first["rows_inserted"]

    summary = json.loads(run_cli(capsys, "data", "summary", "--format", "json").out)
    (daily,) = summary["timeframes"]
    assert daily["symbols"] == 8
    assert daily["rows"] == first["rows_inserted"]
    assert [f["status"] for f in summary["recent_fetches"][:2]] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_gives_back_exactly_what_was_stored(capsys, tmp_path: Path, suffix: str):
    fetch_json(capsys, "--provider", "sample", "--symbols", "AAPL,DHR,ETFC", *SAMPLE)
    out = tmp_path / f"bars{suffix}"
    result = run_cli(
        capsys, "data", "export", "--symbols", "AAPL,DHR,ETFC", *SAMPLE, "--output", str(out)
    )
    assert result.code == 0, result.err
    exported = pl.read_csv(out, try_parse_dates=True) if suffix == ".csv" else pl.read_parquet(out)
    assert exported.columns == ["symbol", "date", "open", "high", "low", "close", "volume"]

    from breadthflow.core.config import get_settings
    from breadthflow.core.models import Timeframe
    from breadthflow.data.lake import open_lake

    settings = get_settings()
    stored = open_lake(settings.resolved_lake_url, settings).read(
        ["AAPL", "DHR", "ETFC"], Timeframe.D1
    )
    expected = stored.select(exported.columns)
    assert exported.height == expected.height
    assert exported.equals(expected.cast(exported.schema)), "export differs from the lake"


def test_dhr_close_has_no_split_jump_in_june_2010(capsys, tmp_path: Path):
    fetch_json(capsys, "--provider", "sample", "--symbols", "DHR", *SAMPLE)
    out = tmp_path / "dhr.csv"
    assert run_cli(capsys, "data", "export", "-s", "DHR", *SAMPLE, "-o", str(out)).code == 0
    bars = pl.read_csv(out, try_parse_dates=True).sort("date")
    moves = bars.select(pl.col("date"), (pl.col("close") / pl.col("close").shift(1) - 1).alias("r"))
    june = moves.filter(pl.col("date").dt.month() == 6, pl.col("date").dt.year() == 2010)
    assert june["r"].abs().max() < 0.15
    # The file's 2:1 split: the close before 2010-06-14 was 78.67, stored as 39.335.
    before = bars.filter(pl.col("date") == pl.date(2010, 6, 11))["close"].item()
    assert before == pytest.approx(78.67 / 2)


def test_fetch_reports_problems_fixed(capsys):
    report = fetch_json(capsys, "--provider", "sample", "--symbols", "DHR,ETFC,STR,ADP", *SAMPLE)
    issues = report["issues"]
    assert issues["split_adjusted"] > 0
    assert issues["corporate_action_adjusted"] > 0
    assert issues["missing_session"] == 7
    assert issues["open_repaired"] >= 2  # ADP has two opens above the high in the file
    listed = json.loads(run_cli(capsys, "data", "issues", "--format", "json").out)
    kinds = {(i["symbol"], i["kind"]) for i in listed}
    assert ("DHR", "split_adjusted") in kinds and ("ETFC", "split_adjusted") in kinds
    assert ("STR", "corporate_action_adjusted") in kinds


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--provider", "nope", "--universe", "demo_small", *SAMPLE), ["unknown provider 'nope'"]),
        (("--provider", "sample", "--universe", "sp5000", *SAMPLE), ["unknown universe 'sp5000'"]),
        (("--provider", "sample", "--symbols", "../x", *SAMPLE), ["invalid symbol '../x'"]),
        (("--provider", "sample", "--symbols", "A;B", *SAMPLE), ["invalid symbol 'A;B'"]),
        (("--provider", "sample", "--symbols", "", *SAMPLE), ["--symbols"]),
        (("--provider", "sample", "--symbols", "ZZZZ", *SAMPLE), ["ZZZZ"]),
        (
            ("--provider", "sample", "-s", "AAPL", "--start", "2010-08-20", "--end", "2009-08-21"),
            ["start date 2010-08-20 is after end date 2009-08-21"],
        ),
        (
            ("--provider", "sample", "-s", "AAPL", "--start", "2010-13-45", "--end", "2010-12-31"),
            ["invalid start date '2010-13-45'"],
        ),
        (("--provider", "sample", "-s", "AAPL", "-t", "2d", *SAMPLE), ["unknown timeframe '2d'"]),
        (("--provider", "sample", "-s", "AAPL", "-t", "5m", *SAMPLE), ["no 5m bars"]),
        (("--provider", "sample", "-s", "AAPL", "-u", "dow30", *SAMPLE), ["exactly one"]),
    ],
)
def test_bad_fetch_input_is_one_line_and_changes_nothing(capsys, args, fragments):
    fetch_json(capsys, "--provider", "sample", "--symbols", "AAPL", *SAMPLE)
    before = run_cli(capsys, "data", "coverage", "--format", "json").out

    result = run_cli(capsys, "data", "fetch", *args)
    assert_one_line_error(result, *fragments)

    assert run_cli(capsys, "data", "coverage", "--format", "json").out == before


def test_unreachable_database_is_one_line_without_password(capsys, monkeypatch):
    monkeypatch.setenv(
        "BREADTHFLOW_DATABASE_URL", "postgresql+psycopg://bf:hunter2@127.0.0.1:1/nope"
    )
    result = run_cli(capsys, "data", "fetch", "-p", "sample", "-s", "AAPL", *SAMPLE)
    assert_one_line_error(result, "cannot connect to database")
    assert "hunter2" not in result.err
    assert result.code == 4


def test_unwritable_lake_is_one_line(capsys, monkeypatch, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BREADTHFLOW_LAKE_URL", (blocker / "lake").as_uri())
    result = run_cli(capsys, "data", "fetch", "-p", "sample", "-s", "AAPL", *SAMPLE)
    assert_one_line_error(result, "not writable")


def test_export_rejects_unknown_extension_and_empty_range(capsys, tmp_path: Path):
    fetch_json(capsys, "-p", "sample", "-s", "AAPL", *SAMPLE)
    bad = run_cli(capsys, "data", "export", "-s", "AAPL", *SAMPLE, "-o", str(tmp_path / "x.xlsx"))
    assert_one_line_error(bad, "x.xlsx", ".csv or .parquet")
    empty = run_cli(
        capsys, "data", "export", "-s", "AAPL", "--start", "2001-01-01", "--end", "2001-12-31",
        "-o", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert_one_line_error(empty, "no 1d bars stored")
    assert not (tmp_path / "x.csv").exists()


def test_partial_failure_exits_nonzero_and_keeps_the_rest(capsys, tmp_path: Path):
    folder = tmp_path / "prices"
    folder.mkdir()
    header = "date,open,high,low,close,volume\n"
    (folder / "GOOD.csv").write_text(header + "2024-01-02,10,11,9,10.5,1000\n")
    (folder / "BAD.csv").write_text(
        header + "2024-01-02,10,11,9,10.5,1000\n2024-01-03,10,11,9,abc,5\n"
    )
    result = run_cli(
        capsys, "data", "fetch", "-p", "csv", "--path", str(folder), "-s", "GOOD,BAD",
        "--start", "2024-01-01", "--end", "2024-01-31", "--format", "json",
    )  # fmt: skip
    assert result.code == 1
    report = json.loads(result.out)
    assert report["symbols_stored"] == 1
    (failure,) = report["failures"]
    assert failure["symbol"] == "BAD"
    assert "BAD.csv line 3" in failure["error"] and "abc" in failure["error"]
    summary = json.loads(run_cli(capsys, "data", "summary", "--format", "json").out)
    assert summary["recent_fetches"][0]["status"] == "partial"


def test_universes_builtin_and_user_lists(capsys):
    listed = json.loads(run_cli(capsys, "data", "universes", "--format", "json").out)
    sizes = {u["name"]: u["symbols"] for u in listed}
    assert sizes["demo_small"] == 8 and sizes["demo_medium"] == 20 and sizes["demo_large"] == 40
    assert sizes["dow30"] == 30 and sizes["sample-sp500"] > 500

    made = run_cli(capsys, "data", "universe", "create", "mine", "-s", "aapl, msft,XOM")
    assert made.code == 0, made.err
    shown = json.loads(run_cli(capsys, "data", "universe", "show", "mine", "-f", "json").out)
    assert [r["symbol"] for r in shown] == ["AAPL", "MSFT", "XOM"]

    dup = run_cli(capsys, "data", "universe", "create", "other", "-s", "AAPL,MSFT,AAPL")
    assert_one_line_error(dup, "duplicate symbol 'AAPL'")
    clash = run_cli(capsys, "data", "universe", "create", "dow30", "-s", "AAPL")
    assert_one_line_error(clash, "built-in")

    report = fetch_json(capsys, "-p", "sample", "-u", "mine", *SAMPLE)
    assert report["symbols_stored"] == 3
    assert run_cli(capsys, "data", "universe", "delete", "mine").code == 0
    assert_one_line_error(run_cli(capsys, "data", "universe", "show", "mine"), "unknown universe")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_read_commands_take_every_format(capsys, fmt):
    fetch_json(capsys, "-p", "sample", "-s", "AAPL,MSFT", *SAMPLE)
    for command in (["data", "summary"], ["data", "universes"], ["data", "coverage"],
                    ["data", "issues"], ["config", "show"]):  # fmt: skip
        result = run_cli(capsys, *command, "--format", fmt)
        assert result.code == 0, (command, result.err)
        assert result.out.strip()
        if fmt == "json":
            json.loads(result.out)
        if fmt == "csv":
            assert "," in result.out.splitlines()[0]


def test_a_fetch_refreshes_the_read_snapshot_and_data_snapshot_reports_it(capsys, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_LAKE_SNAPSHOT_MIN_SYMBOLS", "4")
    fetch_json(capsys, "--provider", "sample", "--universe", "demo_small", *SAMPLE)
    status = json.loads(run_cli(capsys, "data", "snapshot", "--status", "--format", "json").out)
    assert (status["usable"], status["symbols"], status["fresh"], status["stale"]) == (
        True, 8, 8, 0,
    )  # fmt: skip
    summary = json.loads(run_cli(capsys, "data", "summary", "--format", "json").out)
    (daily,) = summary["timeframes"]
    assert (daily["snapshot"]["symbols"], daily["snapshot"]["fresh"]) == (8, 8)
    table = run_cli(capsys, "data", "summary")
    assert "8 of 8 symbols fresh" in table.out
    # Nothing changed since the fetch: the command leaves the file as it is.
    again = json.loads(run_cli(capsys, "data", "snapshot", "--format", "json").out)
    assert (again["status"], again["reused"], again["reread"]) == ("unchanged", 8, 0)
    # One more symbol: a refresh copies the eight and reads only the new partition.
    fetch_json(capsys, "--provider", "sample", "--symbols", "DHR", *SAMPLE)
    status = json.loads(run_cli(capsys, "data", "snapshot", "--status", "--format", "json").out)
    assert (status["symbols"], status["fresh"], status["stale"]) == (9, 9, 0)


def test_with_snapshots_off_no_snapshot_is_written(capsys, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_LAKE_SNAPSHOT", "false")
    fetch_json(capsys, "--provider", "sample", "--universe", "demo_small", *SAMPLE)
    result = run_cli(capsys, "data", "snapshot", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["exists"] is False
    summary = json.loads(run_cli(capsys, "data", "summary", "--format", "json").out)
    assert summary["timeframes"][0]["snapshot"] is None
