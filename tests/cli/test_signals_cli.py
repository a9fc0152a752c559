"""`breadthflow signals …` end to end through the console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from breadthflow.signals import STRATEGIES
from tests.cli._run import assert_one_line_error, run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")
MEDIUM = ("--universe", "demo_medium", *SAMPLE)


@pytest.fixture
def medium(capsys) -> None:
    """The demo_medium universe's sample bars in this test's lake."""
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--universe", "demo_medium",
        *SAMPLE, "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err


def signals(capsys, *args: str):
    return run_cli(capsys, "signals", *args)


def generate(capsys, strategy: str, *args: str) -> dict:
    result = signals(capsys, "generate", "--strategy", strategy, *args, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def stored(capsys, *filters: str) -> list[dict]:
    result = signals(capsys, "list", "--limit", "100000", *filters, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_generates_and_stores_on_the_sample(capsys, medium, strategy):
    batch = generate(capsys, strategy, *MEDIUM, "--hl-window", "50")

    rows = stored(capsys, "--strategy", strategy)
    assert batch["stored"] == len(rows) == sum(batch["counts"].values())
    assert batch["universe"] == "demo_medium" and batch["symbols"] == 20
    assert all("2009-08-21" <= r["date"] <= "2010-08-20" for r in rows)
    assert all(0 <= r["confidence"] <= 1 and r["timeframe"] == "1d" for r in rows)
    market = STRATEGIES[strategy].level.value == "market"
    assert all((r["symbol"] == "demo_medium") == market for r in rows)


def test_regenerating_replaces_instead_of_duplicating(capsys, medium):
    first = generate(capsys, "rsi_reversion", *MEDIUM)
    assert first["stored"] > 20 and first["replaced"] == 0

    second = generate(capsys, "rsi_reversion", *MEDIUM)

    assert second["replaced"] == first["stored"] == second["stored"]
    assert len(stored(capsys)) == first["stored"]


def test_a_run_id_keeps_its_own_copy(capsys, medium):
    manual = generate(capsys, "breadth_composite", *MEDIUM)
    run = generate(capsys, "breadth_composite", *MEDIUM, "--run-id", "nightly-42")

    assert run["replaced"] == 0 and run["pipeline_run_id"] == "nightly-42"
    assert len(stored(capsys)) == manual["stored"] + run["stored"]
    assert {r["pipeline_run_id"] for r in stored(capsys, "--run-id", "nightly-42")} == {
        "nightly-42"
    }


def test_breadth_composite_reaches_both_buy_and_sell(capsys, medium):
    batch = generate(capsys, "breadth_composite", *MEDIUM, "--hl-window", "50")

    assert batch["counts"]["BUY"] > 0 and batch["counts"]["SELL"] > 0
    assert batch["counts"]["HOLD"] > 0


def test_parameters_override_the_configuration(capsys, medium):
    loose = generate(capsys, "rsi_reversion", *MEDIUM, "--param", "oversold=40")
    strict = generate(capsys, "rsi_reversion", *MEDIUM, "-p", "oversold=20")

    assert loose["params"]["oversold"] == 40.0 and strict["params"]["oversold"] == 20.0
    assert loose["counts"]["BUY"] > strict["counts"]["BUY"]


def test_nested_parameters_use_dots(capsys, medium):
    batch = generate(capsys, "breadth_composite", *MEDIUM, "-p", "weights.zbt=0")

    assert batch["params"]["weights"]["zbt"] == 0.0
    assert batch["params"]["weights"]["mcclellan"] == 0.25  # the rest keep their values


def test_list_filters_and_formats(capsys, medium):
    generate(capsys, "rsi_reversion", *MEDIUM)

    buys = stored(capsys, "--type", "buy", "--since", "2010-01-01")
    assert buys and all(r["signal_type"] == "BUY" and r["date"] >= "2010-01-01" for r in buys)
    assert "rsi" in buys[0]["factors"]
    symbol = buys[-1]["symbol"]
    own = stored(capsys, "--symbol", symbol)
    assert own and {r["symbol"] for r in own} == {symbol}
    assert len(own) < len(stored(capsys))
    result = signals(capsys, "list", "--limit", "3", "--format", "csv")
    header, *lines = result.out.strip().splitlines()
    assert header.startswith("symbol,date,timeframe,strategy,signal_type") and len(lines) == 3
    table = signals(capsys, "list", "--limit", "2")
    assert table.code == 0 and "2 of" in table.out


def test_summary_counts_by_strategy(capsys, medium):
    rsi = generate(capsys, "rsi_reversion", *MEDIUM)
    composite = generate(capsys, "breadth_composite", *MEDIUM)

    result = signals(capsys, "summary", "--format", "json")

    by_name = {r["strategy"]: r for r in json.loads(result.out)}
    assert by_name["rsi_reversion"]["signals"] == rsi["stored"]
    assert by_name["breadth_composite"]["hold"] == composite["counts"]["HOLD"]
    assert by_name["breadth_composite"]["symbols"] == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_writes_every_stored_signal(capsys, medium, tmp_path: Path, suffix: str):
    batch = generate(capsys, "rsi_reversion", *MEDIUM)
    path = tmp_path / f"signals{suffix}"

    result = signals(capsys, "export", "--output", str(path), "--strategy", "rsi_reversion")

    assert result.code == 0, result.err
    frame = pl.read_csv(path) if suffix == ".csv" else pl.read_parquet(path)
    assert frame.height == batch["stored"]
    assert frame.columns[:5] == ["symbol", "date", "timeframe", "strategy", "signal_type"]
    assert "rsi" in json.loads(frame["factors"][0])


def test_strategies_lists_the_registry_and_config_version(capsys, isolated_home):
    result = signals(capsys, "strategies", "--format", "json")
    catalog = json.loads(result.out)
    assert catalog["version"] == 1
    assert {s["name"] for s in catalog["strategies"]} == set(STRATEGIES)

    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "strategies.toml").write_text("version = 1\n[golden_cross]\nfast = 20\n")
    catalog = json.loads(signals(capsys, "strategies", "--format", "json").out)
    golden = next(s for s in catalog["strategies"] if s["name"] == "golden_cross")
    assert golden["params"] == {"fast": 20, "slow": 200, "band": 0.1}
    assert str(isolated_home / "strategies.toml") in catalog["sources"]
    table = signals(capsys, "strategies")
    assert "golden_cross" in table.out and "strategies.toml" in table.out


def test_a_wrong_configuration_version_is_one_line(capsys, isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "strategies.toml").write_text("version = 2\n")

    assert_one_line_error(signals(capsys, "strategies"), "version 2", "version 1")


# --- bad input: one line, non-zero exit, nothing stored changes ---------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--strategy", "golden_crosss", *MEDIUM), ("unknown strategy 'golden_crosss'",
                                                    "golden_cross")),
        (("--strategy", "rsi_reversion", *MEDIUM, "-p", "speed=3"),
         ("unknown parameter 'speed'", "oversold")),
        (("--strategy", "rsi_reversion", *MEDIUM, "-p", "period=fast"),
         ("period='fast'", "integer")),
        (("--strategy", "golden_cross", *MEDIUM, "-p", "fast=300"), ("fast=300", "slow=200")),
        (("--strategy", "rsi_reversion", *MEDIUM, "-p", "period"), ("--param 'period'",)),
        (("--strategy", "rsi_reversion", "--universe", "demo_medium", "--start", "2012-01-01",
          "--end", "2012-06-01"), ("no 1d bars stored", "demo_medium")),
        (("--strategy", "breadth_composite", "--symbols", "AAPL", *SAMPLE),
         ("at least 2 symbols", "AAPL")),
        (("--strategy", "rsi_reversion", *MEDIUM, "--run-id", "x" * 80), ("run id",)),
        (("--strategy", "rsi_reversion", "--universe", "demo_medium", "--start", "2010-05-01",
          "--end", "2010-01-01"), ("after end date",)),
    ],
)  # fmt: skip
def test_bad_generate_input_is_one_line_and_changes_nothing(capsys, medium, args, fragments):
    before = generate(capsys, "rsi_reversion", *MEDIUM)

    assert_one_line_error(signals(capsys, "generate", *args), *fragments)

    after = stored(capsys)
    assert len(after) == before["stored"]
    assert {r["strategy"] for r in after} == {"rsi_reversion"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("list", "--strategy", "zweig"), ("unknown strategy 'zweig'",)),
        (("list", "--type", "STRONG_BUY"), ("STRONG_BUY", "BUY, SELL or HOLD")),
        (("list", "--since", "2010-13-01"), ("2010-13-01",)),
        (("list", "--limit", "0"), ("invalid limit 0",)),
        (("export", "--output", "signals.xlsx"), ("signals.xlsx", ".csv or .parquet")),
    ],
)
def test_bad_read_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(signals(capsys, *args), *fragments)
