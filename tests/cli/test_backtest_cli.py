"""`breadthflow backtest …` end to end through the console entry point, on the sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli._run import assert_one_line_error, run_cli

SAMPLE = ("--start", "2009-08-21", "--end", "2010-08-20")
MEDIUM = ("--universe", "demo_medium", *SAMPLE)
SMA = ("--strategy", "sma_cross", "-p", "fast=10", "-p", "slow=30")
STATS_KEYS = {
    "start", "end", "duration_days", "exposure_time_pct", "equity_final", "equity_peak",
    "total_return_pct", "buy_hold_return_pct", "return_ann_pct", "volatility_ann_pct",
    "cagr_pct", "sharpe", "sortino", "calmar", "omega", "alpha_pct", "beta",
    "max_drawdown_pct", "avg_drawdown_pct", "max_drawdown_duration_days",
    "avg_drawdown_duration_days", "n_trades", "win_rate_pct", "best_trade_pct",
    "worst_trade_pct", "avg_trade_pct", "avg_winning_trade_pct", "avg_losing_trade_pct",
    "max_trade_duration_bars", "avg_trade_duration_bars", "profit_factor", "expectancy",
    "sqn", "kelly", "total_fees",
}  # fmt: skip


@pytest.fixture
def medium(capsys) -> None:
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--universe", "demo_medium",
        *SAMPLE, "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err


def backtest(capsys, *args: str):
    return run_cli(capsys, "backtest", *args)


def as_json(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def stored_ids(capsys) -> list[int]:
    return [row["id"] for row in as_json(backtest(capsys, "list", "--format", "json"))]


def test_run_reports_stats_and_trades_and_stores_them(capsys, medium):
    run = as_json(backtest(capsys, "run", *SMA, *MEDIUM, "--format", "json"))

    assert set(run["stats"]) >= STATS_KEYS
    assert run["stats"]["n_trades"] == sum(1 for t in run["trades"] if not t["is_open"])
    assert run["stats"]["start"] == "2009-08-21" and run["universe"] == "demo_medium"
    assert {t["symbol"] for t in run["trades"]} <= {
        "AAPL", "MSFT", "JPM", "XOM", "JNJ", "PG", "GE", "WMT", "IBM", "INTC", "CSCO", "KO",
        "PFE", "CVX", "BAC", "HD", "MRK", "T", "VZ", "ORCL",
    }  # fmt: skip
    shown = as_json(backtest(capsys, "show", str(run["id"]), "--format", "json"))
    assert shown["status"] == "succeeded" and shown["stats"]["sharpe"] == run["stats"]["sharpe"]
    assert len(shown["trades"]) == len(run["trades"])
    assert stored_ids(capsys) == [run["id"]]


def test_the_same_run_twice_gives_the_same_numbers(capsys, medium):
    first = as_json(backtest(capsys, "run", *SMA, *MEDIUM, "--format", "json"))
    second = as_json(backtest(capsys, "run", *SMA, *MEDIUM, "--format", "json"))
    assert first["stats"] == second["stats"] and first["id"] != second["id"]


def test_costs_lower_the_result(capsys, medium):
    free = as_json(backtest(capsys, "run", *SMA, *MEDIUM, "--fees", "0", "--slippage", "0",
                            "--format", "json"))  # fmt: skip
    costly = as_json(backtest(capsys, "run", *SMA, *MEDIUM, "--fees", "0.01", "--format", "json"))
    assert costly["stats"]["equity_final"] < free["stats"]["equity_final"]
    assert free["stats"]["total_fees"] == 0 and costly["stats"]["total_fees"] > 0


def test_a_market_level_strategy_trades_the_universe_in_one_account(capsys, medium):
    args = ("--strategy", "breadth_composite", *MEDIUM, "--hl-window", "50", "--cash", "1e5")
    run = as_json(backtest(capsys, "run", *args, "--format", "json"))

    assert run["config"]["portfolio"] is True
    assert run["stats"]["n_trades"] > 0
    assert len({t["symbol"] for t in run["trades"]}) > 1


def test_report_is_written(capsys, medium, tmp_path: Path):
    path = tmp_path / "run.html"
    result = backtest(capsys, "run", *SMA, *MEDIUM, "--report", str(path))
    assert result.code == 0, result.err
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "sma_cross" in html
    assert "Backtest #" in result.out and str(path) in result.out


def test_optimize_ranks_a_grid_and_stores_the_best(capsys, medium):
    found = as_json(backtest(capsys, "optimize", "--strategy", "sma_cross", *MEDIUM,
                             "--grid", "fast=5,10", "--grid", "slow=20:40:10", "--no-refine",
                             "--objective", "total_return_pct", "--format", "json"))  # fmt: skip

    ranking = found["ranking"]
    assert len(ranking) == 6
    returns = [row["total_return_pct"] for row in ranking]
    assert returns == sorted(returns, reverse=True)
    assert found["best_params"] == {"fast": ranking[0]["fast"], "slow": ranking[0]["slow"]}
    assert found["stats"]["total_return_pct"] == pytest.approx(returns[0])
    listed = as_json(backtest(capsys, "list", "--kind", "optimize", "--format", "json"))
    assert [row["id"] for row in listed] == [found["id"]]


def test_walkforward_reports_folds_and_degradation(capsys, medium):
    found = as_json(backtest(capsys, "walkforward", "--strategy", "sma_cross", *MEDIUM,
                             "--grid", "fast=5,10", "--grid", "slow=20,30", "--train", "120",
                             "--test", "40", "--format", "json"))  # fmt: skip

    assert len(found["folds"]) == 4  # 245 dates: 120 in-sample, then 40 + 40 + 40 + 5
    assert found["folds"][0]["test_start"] > found["folds"][0]["train_end"]
    assert found["stats"]["start"] == found["folds"][0]["test_start"]


def test_montecarlo_is_seeded(capsys, medium):
    args = ("montecarlo", *SMA, *MEDIUM, "--paths", "300", "--seed", "11", "--format", "json")
    first = as_json(backtest(capsys, *args))["montecarlo"]
    second = as_json(backtest(capsys, *args))["montecarlo"]
    assert first == second
    assert 0 <= first["prob_ruin"] <= 1
    assert first["final_return_pct"]["p5"] <= first["final_return_pct"]["p95"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("run", "--strategy", "sma_crosss", *MEDIUM), ("unknown strategy 'sma_crosss'",)),
        (("run", *SMA, *MEDIUM, "-p", "window=3"), ("unknown parameter 'window'",)),
        (("run", *SMA, *MEDIUM, "--fees", "-0.1"), ("fees",)),
        (("run", *SMA, *MEDIUM, "--cash", "0"), ("cash",)),
        (("run", *SMA, *MEDIUM, "--execution", "noon"), ("execution",)),
        (("run", *SMA, *MEDIUM, "--report", "out.txt"), ("out.txt", ".html")),
        (("run", *SMA, "--universe", "demo_medium", "--start", "2012-01-01", "--end",
          "2012-12-31"), ("no 1d bars stored",)),
        (("optimize", "--strategy", "sma_cross", *MEDIUM, "--grid", "fast="), ("--grid",)),
        (("optimize", "--strategy", "sma_cross", *MEDIUM, "--grid", "speed=1,2"),
         ("unknown parameter 'speed'",)),
        (("optimize", "--strategy", "sma_cross", *MEDIUM, "--grid", "fast=5,10",
          "--objective", "luck"), ("unknown objective 'luck'",)),
        (("walkforward", "--strategy", "sma_cross", *MEDIUM, "--grid", "fast=5,10",
          "--train", "300", "--test", "50"), ("350",)),
        (("montecarlo", *SMA, *MEDIUM, "--paths", "0"), ("paths",)),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_stores_nothing(capsys, medium, args, fragments):
    assert_one_line_error(backtest(capsys, *args), *fragments)
    assert stored_ids(capsys) == []


def test_show_of_an_unknown_id_is_one_line(capsys):
    assert_one_line_error(backtest(capsys, "show", "42"), "no backtest with id 42")
