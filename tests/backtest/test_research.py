"""Research helpers: grid search (coarse → fine), walk-forward windows and stitching,
Monte Carlo resampling — checked on hand-made inputs."""

from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from breadthflow.backtest import research
from breadthflow.core.errors import InvalidInputError

D0 = dt.date(2020, 1, 1)


def days(n: int) -> list[dt.date]:
    return [D0 + dt.timedelta(days=i) for i in range(n)]


def scored(score):
    """An evaluate() whose stats come from ``score(params)``; records what it was asked."""
    calls = []

    def evaluate(params, start, end):
        calls.append((dict(params), start, end))
        value = score(params)
        return None, {"sharpe": value, "total_return_pct": value, "n_trades": 5}

    return evaluate, calls


# --- grid search ------------------------------------------------------------------------


def test_grid_combinations_are_the_full_product_in_order():
    combos = research.grid_combinations({"fast": [5, 10], "slow": [50, 100, 200]})
    assert combos[:2] == [{"fast": 5, "slow": 50}, {"fast": 5, "slow": 100}]
    assert len(combos) == 6 and len({tuple(c.values()) for c in combos}) == 6


@pytest.mark.parametrize("grid", [{}, {"fast": []}])
def test_an_empty_grid_is_refused(grid):
    with pytest.raises(InvalidInputError, match="empty grid"):
        research.grid_combinations(grid)


def test_a_huge_grid_is_refused_with_advice():
    grid = {"a": list(range(200)), "b": list(range(200))}
    with pytest.raises(InvalidInputError, match=r"40,000 combinations.*split the grid"):
        research.grid_combinations(grid)


def test_optimize_ranks_by_the_objective_and_refines_around_the_best():
    # Peak at fast=12, slow=150: the coarse grid's best is (10, 100); the fine pass tries
    # the midpoints (8, 15) × (75, 150) around it and finds a better point.
    evaluate, calls = scored(lambda p: -abs(p["fast"] - 12) - abs(p["slow"] - 150) / 10)

    found = research.optimize(evaluate, {"fast": [5, 10, 20], "slow": [50, 100, 200]},
                              D0, D0 + dt.timedelta(days=9))  # fmt: skip

    coarse = found.table.filter(pl.col("stage") == "coarse")
    fine = found.table.filter(pl.col("stage") == "fine")
    assert coarse.height == 9
    assert set(zip(fine["fast"], fine["slow"], strict=True)) == {
        (f, s) for f in (8, 10, 15) for s in (75, 100, 150)
    } - {(10, 100)}
    assert found.best == {"fast": 10, "slow": 150}
    assert found.table["sharpe"].to_list() == sorted(found.table["sharpe"].to_list(), reverse=True)
    assert len(calls) == 9 + 8  # nothing evaluated twice


def test_optimize_without_refine_evaluates_the_grid_only():
    evaluate, calls = scored(lambda p: p["fast"])
    found = research.optimize(evaluate, {"fast": [1, 2, 3]}, D0, D0, refine=False)
    assert len(calls) == 3 and found.best == {"fast": 3}


def test_refused_combinations_are_skipped_and_listed():
    def evaluate(params, start, end):
        if params["fast"] >= params["slow"]:
            raise InvalidInputError(f"fast={params['fast']} must be shorter than slow")
        return None, {"sharpe": params["slow"] - params["fast"], "n_trades": 1}

    found = research.optimize(evaluate, {"fast": [10, 50], "slow": [20, 40]}, D0, D0,
                              refine=False)  # fmt: skip

    assert found.table.height == 2
    assert [p for p, _ in found.skipped] == [{"fast": 50, "slow": 20}, {"fast": 50, "slow": 40}]
    assert "must be shorter" in found.skipped[0][1]


def test_a_constraint_rejects_results():
    evaluate, _ = scored(lambda p: p["x"])
    found = research.optimize(evaluate, {"x": [1, 2, 3]}, D0, D0, refine=False,
                              constraint=lambda params, stats: params["x"] != 3)  # fmt: skip
    assert found.best == {"x": 2} and found.skipped[0][1] == "rejected by the constraint"


def test_results_without_an_objective_rank_last():
    evaluate, _ = scored(lambda p: None if p["x"] == 3 else p["x"])
    found = research.optimize(evaluate, {"x": [1, 2, 3]}, D0, D0, refine=False)
    assert found.table["x"].to_list() == [2, 1, 3]


def test_an_unknown_objective_is_refused():
    with pytest.raises(InvalidInputError, match="unknown objective 'profit'"):
        research.optimize(lambda *a: (None, {}), {"x": [1]}, D0, D0, objective="profit")


# --- walk-forward -------------------------------------------------------------------------


def test_rolling_windows_move_by_the_test_length():
    windows = research.walk_forward_windows(days(10), train=4, test=3)
    assert [(w[0].day, w[1].day, w[2].day, w[3].day) for w in windows] == [
        (1, 4, 5, 7), (4, 7, 8, 10),
    ]  # fmt: skip


def test_anchored_windows_keep_the_first_date_and_the_last_fold_may_be_short():
    windows = research.walk_forward_windows(days(9), train=4, test=3, anchored=True)
    assert [(w[0].day, w[1].day, w[2].day, w[3].day) for w in windows] == [
        (1, 4, 5, 7), (1, 7, 8, 9),
    ]  # fmt: skip


@pytest.mark.parametrize(("train", "test", "match"), [(1, 5, "train >= 2"), (8, 5, "13 trading")])
def test_bad_windows_are_refused(train, test, match):
    with pytest.raises(InvalidInputError, match=match):
        research.walk_forward_windows(days(10), train, test)


def test_stitching_chains_segment_returns():
    a = pl.DataFrame({"date": days(3), "equity": [100.0, 110.0, 121.0]})
    b = pl.DataFrame({"date": days(5)[3:], "equity": [50.0, 25.0]})

    stitched = research._stitch([a, b], capital=1_000.0)

    assert stitched["equity"].to_list() == pytest.approx([1000, 1100, 1210, 1210, 605])
    assert stitched["drawdown"].to_list() == pytest.approx([0, 0, 0, 0, -0.5])


# --- Monte Carlo --------------------------------------------------------------------------


def fake_result(trade_returns, equity):
    trades = pl.DataFrame({"return_pct": trade_returns, "is_open": [False] * len(trade_returns)},
                          schema={"return_pct": pl.Float64, "is_open": pl.Boolean})  # fmt: skip
    curve = pl.DataFrame({"date": days(len(equity)), "equity": equity})
    return SimpleNamespace(start_capital=equity[0], trades=trades, equity=curve)


def test_trade_bootstrap_is_seeded_and_compounds_the_drawn_trades():
    result = fake_result([10.0, -5.0, 20.0], [100.0, 101.0])

    first = research.monte_carlo(result, paths=500, seed=3)
    again = research.monte_carlo(result, paths=500, seed=3)
    other = research.monte_carlo(result, paths=500, seed=4)

    assert first["final_return_pct"] == again["final_return_pct"]
    assert first["final_return_pct"] != other["final_return_pct"]
    # Three draws from {+10%, -5%, +20%}: the extremes are bounded by all-worst / all-best.
    lo, hi = (0.95**3 - 1) * 100, (1.2**3 - 1) * 100
    p = first["final_return_pct"]
    assert lo - 1e-9 <= p["p5"] <= p["p50"] <= p["p95"] <= hi + 1e-9
    assert first["fan"].height == 4 and first["fan"]["p50"][0] == 100.0


def test_ruin_counts_paths_that_lose_the_given_fraction():
    always_down = fake_result([-30.0, -30.0], [100.0, 100.0])  # two trades: 100 → 70 → 49
    assert research.monte_carlo(always_down, paths=50, ruin=0.5)["prob_ruin"] == 1.0
    assert research.monte_carlo(always_down, paths=50, ruin=0.6)["prob_ruin"] == 0.0


def test_block_bootstrap_draws_whole_blocks_of_consecutive_days():
    returns = np.arange(10, dtype=float)
    rng = np.random.Generator(np.random.PCG64(1))

    drawn = research._block_bootstrap(returns, paths=20, block=4, rng=rng)

    assert drawn.shape == (20, 10)
    for path in drawn:
        for start in range(0, 10, 4):
            piece = path[start : start + 4]
            assert all((b - a) % 10 == 1 for a, b in itertools.pairwise(piece))


def test_daily_bootstrap_keeps_the_curve_length_and_its_return_range():
    equity = [100.0 * 1.01**i for i in range(30)]  # +1% every day
    mc = research.monte_carlo(fake_result([1.0], equity), paths=100, method="daily", block=5)
    assert mc["fan"].height == 30
    assert mc["final_return_pct"]["p5"] == pytest.approx((1.01**29 - 1) * 100)
    assert mc["max_drawdown_pct"]["p50"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"paths": 0}, "paths"), ({"ruin": 1.5}, "ruin"), ({"method": "weekly"}, "weekly"),
     ({"block": 0, "method": "daily"}, "block")],
)  # fmt: skip
def test_bad_monte_carlo_settings_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        research.monte_carlo(fake_result([1.0], [100.0, 101.0, 102.0]), **kwargs)


def test_trade_bootstrap_without_closed_trades_is_refused():
    with pytest.raises(InvalidInputError, match="closed trades"):
        research.monte_carlo(fake_result([], [100.0, 101.0]))
