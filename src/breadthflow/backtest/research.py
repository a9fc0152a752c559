"""Research on top of the engine: grid optimisation, walk-forward analysis, Monte Carlo.

Pure: everything here works on the arguments it is given (a way to build a strategy, a
way to evaluate it on a date range, frames) and never reads the lake or the DB.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from breadthflow.backtest.engine import BacktestResult
from breadthflow.backtest.metrics import compute_stats
from breadthflow.core.errors import BreadthFlowError, InvalidInputError

# Objectives and whether larger is better. Drawdown is reported negative (-12.5 %), so
# "larger" (closer to zero) is better there too.
OBJECTIVES: dict[str, str] = {
    "sharpe": "max",
    "sortino": "max",
    "calmar": "max",
    "omega": "max",
    "cagr_pct": "max",
    "total_return_pct": "max",
    "return_ann_pct": "max",
    "max_drawdown_pct": "max",
    "profit_factor": "max",
    "sqn": "max",
    "expectancy_pct": "max",
    "win_rate_pct": "max",
}
MAX_GRID = 10_000
# Columns of the optimisation table besides the parameters.
RESULT_KEYS = ("total_return_pct", "cagr_pct", "sharpe", "max_drawdown_pct", "n_trades")

Evaluate = Callable[[Mapping[str, Any], dt.date, dt.date], tuple[BacktestResult, dict[str, Any]]]
Constraint = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


def check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise InvalidInputError(
            f"unknown objective '{objective}' — expected one of {', '.join(OBJECTIVES)}"
        )
    return objective


def grid_combinations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order; refuses an empty or huge grid."""
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise InvalidInputError("empty grid — give --grid NAME=V1,V2,… with at least one value")
    size = math.prod(len(v) for v in grid.values())
    if size > MAX_GRID:
        raise InvalidInputError(
            f"grid has {size:,} combinations — at most {MAX_GRID:,} per run; narrow the "
            "ranges, or split the grid over several runs (optimise coarse first, then refine)"
        )
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


@dataclass
class OptimizeResult:
    """The ranked table (best first), the best parameters and what was skipped."""

    table: pl.DataFrame
    best: dict[str, Any]
    objective: str
    grid_params: list[str]
    skipped: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def optimize(
    evaluate: Evaluate,
    grid: Mapping[str, Sequence[Any]],
    start: dt.date,
    end: dt.date,
    objective: str = "sharpe",
    refine: bool = True,
    constraint: Constraint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OptimizeResult:
    """Grid search, coarse then fine.

    The coarse pass evaluates every combination of ``grid``. The fine pass then tries,
    for each numeric parameter, the midpoints between the best value and its neighbours
    in the grid (rounded for whole-number parameters), in every combination with the
    best values of the others. Combinations the strategy refuses (``fast >= slow``) are
    skipped and listed; ``constraint(params, stats)`` can reject results (say, fewer than
    10 trades). Ranking: by the objective, best first; results without one go last.
    """
    check_objective(objective)
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    seen: set[tuple[Any, ...]] = set()

    def run(combos: list[dict[str, Any]], stage: str) -> None:
        for i, params in enumerate(combos):
            key = tuple(params.values())
            if key in seen:
                continue
            seen.add(key)
            try:
                _, stats = evaluate(params, start, end)
            except BreadthFlowError as exc:
                skipped.append((params, str(exc)))
                continue
            finally:
                if progress is not None:
                    progress(i + 1, len(combos))
            if constraint is not None and not constraint(params, stats):
                skipped.append((params, "rejected by the constraint"))
                continue
            rows.append({**params, "stage": stage, **_result_columns(stats, objective)})

    coarse = grid_combinations(grid)
    run(coarse, "coarse")
    if refine and rows:
        best = _ranked(rows, objective)[0]
        run(_refinements(grid, best), "fine")
    if not rows:
        reason = skipped[0][1] if skipped else "no combination ran"
        raise InvalidInputError(f"no parameter combination could be evaluated — {reason}")
    ranked = _ranked(rows, objective)
    table = pl.DataFrame(ranked, infer_schema_length=None)
    best_params = {k: ranked[0][k] for k in grid}
    return OptimizeResult(table, best_params, objective, list(grid), skipped)


def _result_columns(stats: Mapping[str, Any], objective: str) -> dict[str, Any]:
    keys = dict.fromkeys((objective, *RESULT_KEYS))
    return {k: stats.get(k) for k in keys}


def _ranked(rows: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row.get(objective)
        if value is None or not math.isfinite(value):
            return (1, 0.0)
        return (0, -float(value))

    return sorted(rows, key=key)


def _refinements(
    grid: Mapping[str, Sequence[Any]], best: Mapping[str, Any]
) -> list[dict[str, Any]]:
    options: dict[str, list[Any]] = {}
    for name, values in grid.items():
        value = best[name]
        numeric = sorted({v for v in values if _is_number(v)})
        if not _is_number(value) or len(numeric) < 2:
            options[name] = [value]
            continue
        at = numeric.index(value)
        near = [value]
        for other in (
            numeric[at - 1] if at > 0 else None,
            numeric[at + 1] if at + 1 < len(numeric) else None,
        ):
            if other is None:
                continue
            mid = (value + other) / 2
            if isinstance(value, int):
                mid = round(mid)
            if mid not in near and mid != other:
                near.append(mid)
        options[name] = sorted(near)
    return grid_combinations(options)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- walk-forward -----------------------------------------------------------------------


@dataclass
class WalkForwardResult:
    folds: pl.DataFrame
    equity: pl.DataFrame  # stitched out-of-sample equity: date, equity, drawdown
    trades: pl.DataFrame
    stats: dict[str, Any]  # of the stitched out-of-sample curve
    in_sample: float | None  # mean in-sample objective over the folds
    out_of_sample: float | None  # mean out-of-sample objective
    degradation: float | None  # out_of_sample / in_sample (1 = no degradation)


def walk_forward_windows(
    dates: Sequence[dt.date], train: int, test: int, anchored: bool = False
) -> list[tuple[dt.date, dt.date, dt.date, dt.date]]:
    """(train_start, train_end, test_start, test_end) over trading ``dates``: each test
    window follows its training window; the next fold moves on by ``test`` dates.
    Rolling windows keep ``train`` dates; anchored (expanding) ones start at the first."""
    if train < 2 or test < 1:
        raise InvalidInputError(
            f"invalid walk-forward windows train={train}, test={test} — expected train >= 2 "
            "and test >= 1 trading days"
        )
    if train + test > len(dates):
        raise InvalidInputError(
            f"walk-forward needs train + test = {train + test} trading days, but the range "
            f"has {len(dates)} — shorten the windows or widen the range"
        )
    windows = []
    first_test = train
    while first_test < len(dates):
        last_test = min(first_test + test, len(dates)) - 1
        train_start = 0 if anchored else first_test - train
        windows.append(
            (dates[train_start], dates[first_test - 1], dates[first_test], dates[last_test])
        )
        first_test += test
    return windows


def walk_forward(
    evaluate: Evaluate,
    grid: Mapping[str, Sequence[Any]],
    dates: Sequence[dt.date],
    train: int,
    test: int,
    objective: str = "sharpe",
    anchored: bool = False,
    capital: float = 10_000.0,
    progress: Callable[[int, int], None] | None = None,
) -> WalkForwardResult:
    """Optimise in each training window, apply the best parameters to the following test
    window, and chain the test windows' daily returns into one out-of-sample curve."""
    check_objective(objective)
    windows = walk_forward_windows(dates, train, test, anchored)
    folds, pieces, trades = [], [], []
    for n, (a, b, c, d) in enumerate(windows, start=1):
        fitted = optimize(evaluate, grid, a, b, objective, refine=False)
        in_sample = fitted.table[objective][0]
        result, stats = evaluate(fitted.best, c, d)
        folds.append(
            {
                "fold": n, "train_start": a, "train_end": b, "test_start": c, "test_end": d,
                "params": ", ".join(f"{k}={v}" for k, v in fitted.best.items()),
                "in_sample": in_sample, "out_of_sample": stats.get(objective),
            }
        )  # fmt: skip
        pieces.append(result.equity.select("date", "equity"))
        trades.append(result.trades)
        if progress is not None:
            progress(n, len(windows))
    equity = _stitch(pieces, capital)
    all_trades = pl.concat(trades, how="diagonal_relaxed") if trades else pl.DataFrame()
    stats = compute_stats(equity.select("date", "equity"), all_trades)
    table = pl.DataFrame(folds, infer_schema_length=None)
    is_mean = _mean(table["in_sample"])
    oos_mean = _mean(table["out_of_sample"])
    degradation = oos_mean / is_mean if is_mean not in (None, 0) and oos_mean is not None else None
    return WalkForwardResult(table, equity, all_trades, stats, is_mean, oos_mean, degradation)


def _stitch(pieces: list[pl.DataFrame], capital: float) -> pl.DataFrame:
    """One curve from consecutive segments: each segment's daily returns, chained."""
    dates: list[dt.date] = []
    values: list[float] = []
    level = capital
    for piece in pieces:
        equity = piece["equity"].to_numpy()
        if equity.size == 0:
            continue
        scaled = level * equity / equity[0]
        dates.extend(piece["date"].to_list())
        values.extend(scaled.tolist())
        level = float(scaled[-1])
    frame = pl.DataFrame(
        {"date": dates, "equity": values}, schema={"date": pl.Date, "equity": pl.Float64}
    )
    peak = frame["equity"].cum_max()
    return frame.with_columns((pl.col("equity") / peak - 1).alias("drawdown"))


def _mean(values: pl.Series) -> float | None:
    clean = [float(v) for v in values.to_list() if v is not None and math.isfinite(v)]
    return sum(clean) / len(clean) if clean else None


# --- Monte Carlo --------------------------------------------------------------------------

PERCENTILES = (5, 25, 50, 75, 95)


def monte_carlo(
    result: BacktestResult,
    paths: int = 1_000,
    method: str = "trades",
    block: int = 20,
    seed: int = 7,
    ruin: float = 0.5,
) -> dict[str, Any]:
    """Resampled equity paths from a backtest, seeded (the same seed, the same answer).

    - ``trades``: each path draws the closed trades' returns with replacement, as many as
      there were, and compounds them from the start capital (trades one after another,
      all-in).
    - ``daily``: each path is a circular block bootstrap of the equity curve's daily
      returns (blocks of ``block`` days keep volatility clustering), as long as the curve.

    Returns percentiles of the final return and of the maximum drawdown over the paths, a
    fan (percentiles of equity at each step) and the probability of ruin: the share of
    paths whose equity falls to ``(1 - ruin)`` × start capital or below at any step.
    """
    check_monte_carlo(paths, method, block, ruin)
    rng = np.random.Generator(np.random.PCG64(seed))
    capital = result.start_capital
    if method == "trades":
        closed = result.trades.filter(~pl.col("is_open"))
        returns = (closed["return_pct"].to_numpy() / 100.0) if closed.height else np.array([])
        if returns.size == 0:
            raise InvalidInputError("Monte Carlo by trades needs closed trades; this run has none")
        draws = rng.integers(0, returns.size, size=(paths, returns.size))
        growth = np.cumprod(1.0 + returns[draws], axis=1)
    elif method == "daily":
        equity = result.equity["equity"].to_numpy()
        daily = equity[1:] / equity[:-1] - 1.0
        if daily.size < 2:
            raise InvalidInputError("Monte Carlo by days needs at least 3 days of equity")
        growth = np.cumprod(1.0 + _block_bootstrap(daily, paths, block, rng), axis=1)
    else:  # pragma: no cover - refused by check_monte_carlo
        raise AssertionError(method)
    curves = capital * np.hstack([np.ones((paths, 1)), growth])
    final = (curves[:, -1] / capital - 1.0) * 100.0
    drawdown = (curves / np.maximum.accumulate(curves, axis=1) - 1.0).min(axis=1) * 100.0
    ruined = (curves.min(axis=1) <= capital * (1.0 - ruin)).mean()
    fan = np.percentile(curves, PERCENTILES, axis=0)
    return {
        "method": method,
        "paths": paths,
        "seed": seed,
        "block": block if method == "daily" else None,
        "ruin_level": ruin,
        "prob_ruin": float(ruined),
        "final_return_pct": _percentiles(final),
        "max_drawdown_pct": _percentiles(drawdown),
        "fan": pl.DataFrame(
            {
                "step": np.arange(curves.shape[1]),
                **{f"p{p}": fan[i] for i, p in enumerate(PERCENTILES)},
            }
        ),
    }


def check_monte_carlo(paths: int, method: str, block: int, ruin: float) -> None:
    """Refuse settings out of range before any work is done."""
    if method not in ("trades", "daily"):
        raise InvalidInputError(f"unknown Monte Carlo method '{method}' — expected trades or daily")
    if paths < 1 or paths > 100_000:
        raise InvalidInputError(f"invalid number of paths {paths} — expected 1 to 100,000")
    if not 0 < ruin < 1:
        raise InvalidInputError(f"invalid ruin level {ruin} — expected a fraction between 0 and 1")
    if block < 1:
        raise InvalidInputError(f"invalid block length {block} — expected 1 or more days")


def _block_bootstrap(
    returns: np.ndarray, paths: int, block: int, rng: np.random.Generator
) -> np.ndarray:
    n = returns.size
    blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(paths, blocks))
    index = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return returns[index.reshape(paths, blocks * block)[:, :n]]


def _percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{p}": float(np.percentile(values, p)) for p in PERCENTILES} | {
        "mean": float(values.mean())
    }
