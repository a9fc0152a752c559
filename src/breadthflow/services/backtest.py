"""Backtest services: run a strategy over stored bars, optimise, walk forward, Monte Carlo.

One implementation for every interface (CLI, API, pipelines). Each run is recorded in the
DB (``backtests``) with its stats; its equity curve and trades go to the lake under
``results/backtests/<id>/``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from breadthflow.backtest.config import BacktestConfig, config_from
from breadthflow.backtest.engine import BacktestResult
from breadthflow.backtest.orders import backtest_signals, equal_weight_benchmark
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.backtest.report import render_report, write_report
from breadthflow.backtest.research import (
    OptimizeResult,
    WalkForwardResult,
    check_monte_carlo,
    check_objective,
    monte_carlo,
    optimize,
    walk_forward,
)
from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.core.models import DateRange
from breadthflow.services.context import AppContext
from breadthflow.services.data import resolve_symbols, shown_symbols
from breadthflow.services.signals import read_strategy_bars, strategy_config, universe_label
from breadthflow.signals import Level, MarketData, Strategy
from breadthflow.signals.base import convert_param
from breadthflow.store.backtests import BacktestRepository, BacktestSummary

Progress = Callable[[int, int], None]


@dataclass
class Study:
    """Everything a backtest of one strategy on one universe needs, read once.

    ``bars`` include warm-up history before ``start`` (as much as the strategy asks for);
    trading happens only between ``start`` and ``end``. Signals are computed once per
    parameter set on the whole history and reused for every window (the strategies are
    causal, so a window's signals do not depend on later data).
    """

    strategy: str
    base_params: dict[str, Any]
    label: str
    symbols: list[str]
    period: DateRange
    data: MarketData
    config: BacktestConfig
    build: Callable[[Mapping[str, Any]], Strategy]
    _signals: dict[tuple[Any, ...], tuple[Strategy, pl.DataFrame]] = field(default_factory=dict)

    @cached_property
    def prices(self) -> PriceMatrix:
        return PriceMatrix.from_bars(self.data.bars)

    @cached_property
    def trading_dates(self) -> list[dt.date]:
        window = self.prices.between(self.period.start, self.period.end)
        return [d.astype(object) for d in window.dates]

    def signals(self, params: Mapping[str, Any]) -> tuple[Strategy, pl.DataFrame]:
        merged = {**self.base_params, **params}
        key = tuple(sorted((k, repr(v)) for k, v in merged.items()))
        if key not in self._signals:
            built = self.build(merged)
            self._signals[key] = (built, built.generate(self.data))
        return self._signals[key]

    def evaluate(
        self, params: Mapping[str, Any], start: dt.date, end: dt.date
    ) -> tuple[BacktestResult, dict[str, Any]]:
        """Backtest the strategy with ``params`` (over the base ones) from start to end."""
        built, signals = self.signals(params)
        window = self.prices.between(start, end)
        if window.dates.size == 0:
            raise InvalidInputError(f"no trading dates between {start} and {end}")
        market = self.label if built.level is Level.MARKET else None
        window_signals = signals.filter(pl.col("date").is_between(start, end))
        result = backtest_signals(window_signals, window, self.config, market)
        benchmark = equal_weight_benchmark(window, result.start_capital)
        # compute_stats on the result's frames, from the engine's arrays (same numbers).
        stats = result.stats(benchmark=benchmark.rename({"equity": "close"}))
        return result, stats


def prepare_study(
    ctx: AppContext,
    strategy: str,
    start: str | dt.date,
    end: str | dt.date,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
    params: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | BacktestConfig | None = None,
    hl_window: int = 252,
    warmup_params: Sequence[Mapping[str, Any]] = (),
) -> Study:
    """Check every input, then read the bars once (with warm-up). Raises before any I/O
    for a bad strategy, parameter, config or date."""
    strategies = strategy_config(ctx)
    name = strategy.strip()
    base = dict(params or {})
    built = strategies.build(name, base)
    engine_config = (
        config if isinstance(config, BacktestConfig) else config_from(dict(config or {}))
    )
    period = DateRange.parse(start, end)
    wanted = resolve_symbols(ctx, symbols, universe)
    label = universe_label(universe, wanted)
    warmup = max(
        [built.warmup_bars()]
        + [strategies.build(name, {**base, **p}).warmup_bars() for p in warmup_params]
    )
    what = f"universe '{label}'" if universe else f"symbols {shown_symbols(wanted)}"
    bars, present = read_strategy_bars(ctx, built, wanted, period, what, warmup)
    bars = bars.filter(pl.col("symbol").is_in(present))
    return Study(
        strategy=built.name,
        base_params=base,
        label=label,
        symbols=present,
        period=period,
        data=MarketData(bars, label, hl_window),
        config=engine_config,
        build=lambda p: strategies.build(name, dict(p)),
    )


@dataclass
class BacktestOutcome:
    id: int
    strategy: str
    params: dict[str, Any]
    universe: str
    symbols: int
    start: dt.date
    end: dt.date
    stats: dict[str, Any]
    result: BacktestResult
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, trades: int | None = None) -> dict[str, Any]:
        """JSON-ready: the run, its ``stats`` and its ``trades`` (all, or the last N)."""
        frame = self.result.trades if trades is None else self.result.trades.tail(trades)
        return {
            "id": self.id,
            "strategy": self.strategy,
            "params": self.params,
            "universe": self.universe,
            "symbols": self.symbols,
            "start": self.start,
            "end": self.end,
            "config": self.result.config.model_dump(),
            "stats": self.stats,
            "trades": frame.to_dicts(),
            **({"report": str(self.report)} if self.report else {}),
            **self.extra,
        }


def run_backtest_study(
    ctx: AppContext,
    study: Study,
    report: str | Path | None = None,
    pipeline_run_id: str | None = None,
) -> BacktestOutcome:
    """One backtest with the study's parameters, recorded and stored."""
    report_path = _check_report(report)
    repo = BacktestRepository(ctx.db)
    built, _ = study.signals({})
    run_id = repo.start(
        "run",
        study.strategy,
        built.params.model_dump(),
        study.label,
        study.symbols,
        study.period.start,
        study.period.end,
        study.config.model_dump(),
        pipeline_run_id,
    )
    try:
        result, stats = study.evaluate({}, study.period.start, study.period.end)
        artifacts = _store_artifacts(ctx, run_id, result)
        path = None
        if report_path is not None:
            path = _write_report(report_path, study, built, result, stats)
        repo.finish(run_id, stats, artifacts)
    except BaseException as exc:
        repo.fail(run_id, str(exc) if isinstance(exc, BreadthFlowError) else repr(exc))
        raise
    return BacktestOutcome(
        run_id,
        study.strategy,
        built.params.model_dump(),
        study.label,
        len(study.symbols),
        study.period.start,
        study.period.end,
        stats,
        result,
        path,
    )


def optimize_study(
    ctx: AppContext,
    study: Study,
    grid: Mapping[str, Sequence[Any]],
    objective: str = "sharpe",
    refine: bool = True,
    min_trades: int = 0,
    report: str | Path | None = None,
    progress: Progress | None = None,
) -> tuple[BacktestOutcome, OptimizeResult]:
    """Grid search (coarse → fine); the best parameters are then backtested and stored."""
    check_objective(objective)
    report_path = _check_report(report)

    def enough_trades(_params: Mapping[str, Any], stats: Mapping[str, Any]) -> bool:
        return (stats.get("n_trades") or 0) >= min_trades

    found = optimize(
        study.evaluate,
        grid,
        study.period.start,
        study.period.end,
        objective,
        refine,
        enough_trades if min_trades else None,
        progress,
    )
    best = _store_best(
        ctx,
        study,
        "optimize",
        found.best,
        {
            "objective": objective,
            "grid": {k: list(v) for k, v in grid.items()},
            "table": found.table.head(50).to_dicts(),
        },
    )
    if report_path is not None:
        built, _ = study.signals(found.best)
        best.report = _write_report(
            report_path, study, built, best.result, best.stats, optimization=found
        )
    return best, found


def walk_forward_study(
    ctx: AppContext,
    study: Study,
    grid: Mapping[str, Sequence[Any]],
    train: int,
    test: int,
    objective: str = "sharpe",
    anchored: bool = False,
    report: str | Path | None = None,
    progress: Progress | None = None,
) -> tuple[int, WalkForwardResult]:
    report_path = _check_report(report)
    found = walk_forward(
        study.evaluate,
        grid,
        study.trading_dates,
        train,
        test,
        objective,
        anchored,
        study.config.cash,
        progress,
    )
    repo = BacktestRepository(ctx.db)
    run_id = repo.start(
        "walkforward",
        study.strategy,
        {
            "grid": {k: list(v) for k, v in grid.items()},
            "train": train,
            "test": test,
            "anchored": anchored,
            "objective": objective,
        },
        study.label,
        study.symbols,
        study.period.start,
        study.period.end,
        study.config.model_dump(),
    )
    stats = {
        **found.stats,
        "in_sample": found.in_sample,
        "out_of_sample": found.out_of_sample,
        "degradation": found.degradation,
        "folds": found.folds.to_dicts(),
    }
    repo.finish(
        run_id, stats, _store_frames(ctx, run_id, {"equity": found.equity, "trades": found.trades})
    )
    if report_path is not None:
        html = render_report(
            title=f"Walk-forward: {study.strategy} on {study.label}, "
            f"{study.period.start} → {study.period.end}",
            equity=found.equity.with_columns(
                pl.lit(None, pl.Float64).alias("cash"), pl.lit(None, pl.Float64).alias("exposure")
            ),
            trades=found.trades,
            stats=found.stats,
            config=study.config.model_dump(),
            walkforward=found.folds,
            objective=objective,
        )
        write_report(report_path, html)
    return run_id, found


def monte_carlo_study(
    ctx: AppContext,
    study: Study,
    paths: int = 1_000,
    method: str = "trades",
    block: int = 20,
    seed: int = 7,
    ruin: float = 0.5,
    report: str | Path | None = None,
) -> tuple[BacktestOutcome, dict[str, Any]]:
    """Backtest once, then resample it; both are stored."""
    report_path = _check_report(report)
    check_monte_carlo(paths, method, block, ruin)
    outcome = run_backtest_study(ctx, study)
    mc = monte_carlo(outcome.result, paths, method, block, seed, ruin)
    repo = BacktestRepository(ctx.db)
    run_id = repo.start(
        "montecarlo",
        study.strategy,
        {
            **outcome.params,
            "paths": paths,
            "method": method,
            "block": block,
            "seed": seed,
            "ruin": ruin,
        },
        study.label,
        study.symbols,
        study.period.start,
        study.period.end,
        study.config.model_dump(),
    )
    plain = {k: v for k, v in mc.items() if k != "fan"}
    repo.finish(
        run_id, {**plain, "backtest_id": outcome.id}, _store_frames(ctx, run_id, {"fan": mc["fan"]})
    )
    if report_path is not None:
        built, _ = study.signals({})
        outcome.report = _write_report(
            report_path, study, built, outcome.result, outcome.stats, montecarlo=mc
        )
    outcome.extra = {"montecarlo_id": run_id, "montecarlo": plain}
    return outcome, mc


def list_backtests(
    ctx: AppContext,
    limit: int = 20,
    offset: int = 0,
    strategy: str | None = None,
    kind: str | None = None,
) -> tuple[list[BacktestSummary], int]:
    repo = BacktestRepository(ctx.db)
    return repo.list(limit, offset, strategy, kind), repo.count(strategy, kind)


def show_backtest(
    ctx: AppContext, backtest_id: int
) -> tuple[BacktestSummary, dict[str, pl.DataFrame]]:
    """A stored backtest and its stored frames (equity, trades, fan, … as present)."""
    summary = BacktestRepository(ctx.db).get(backtest_id)
    frames: dict[str, pl.DataFrame] = {}
    if summary.artifacts:
        for name in ("equity", "trades", "fan"):
            frame = ctx.lake.read_table(f"{summary.artifacts}/{name}.parquet")
            if frame is not None:
                frames[name] = frame
    return summary, frames


# --- helpers ------------------------------------------------------------------------------


def parse_grid(pairs: Sequence[str]) -> dict[str, list[str]]:
    """``["fast=5,10,20", "slow=50,100"]`` → ``{"fast": ["5","10","20"], "slow": [...]}``.
    Ranges ``fast=5:50:5`` (start:stop:step, inclusive) expand to their values."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise InvalidInputError(
                f"invalid --grid '{pair}' — expected NAME=V1,V2,… or NAME=A:B:STEP"
            )
        if name in grid:
            raise InvalidInputError(f"--grid names '{name}' twice — give each parameter once")
        grid[name] = _grid_values(pair, values)
    if not grid:
        raise InvalidInputError("empty grid — give --grid NAME=V1,V2,… at least once")
    return grid


def _grid_values(pair: str, text: str) -> list[str]:
    if ":" not in text:
        values = [v.strip() for v in text.split(",") if v.strip()]
        if not values:
            raise InvalidInputError(f"invalid --grid '{pair}' — no values")
        return values
    parts = text.split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidInputError(
            f"invalid --grid range '{pair}' — expected numbers A:B:STEP"
        ) from None
    if len(numbers) != 3 or numbers[2] <= 0 or numbers[1] < numbers[0]:
        raise InvalidInputError(
            f"invalid --grid range '{pair}' — expected A:B:STEP with A <= B, STEP > 0"
        )
    start, stop, step = numbers
    count = math.floor((stop - start) / step + 1e-9) + 1
    whole = all(float(p).is_integer() for p in parts)
    return [str(int(start + i * step)) if whole else repr(start + i * step) for i in range(count)]


def typed_grid(study: Study, grid: Mapping[str, Sequence[str]]) -> dict[str, list[Any]]:
    """Grid values converted by the strategy's parameter model (``"10"`` → 10), so unknown
    names and bad values are refused before the first backtest."""
    typed: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if "." in name:
            raise InvalidInputError(
                f"--grid '{name}': only top-level parameters can be searched — set nested "
                "ones with --param"
            )
        converted = [convert_param(study.strategy, name, value) for value in values]
        typed[name] = list(dict.fromkeys(converted))
    return typed


def _check_report(report: str | Path | None) -> Path | None:
    if report is None:
        return None
    path = Path(report)
    if path.suffix.lower() != ".html":
        raise InvalidInputError(f"cannot write a report to '{path.name}' — expected FILE.html")
    if not path.parent.exists():
        raise InvalidInputError(f"folder {path.parent} does not exist")
    return path


def _store_frames(ctx: AppContext, run_id: int, frames: Mapping[str, pl.DataFrame]) -> str:
    prefix = f"results/backtests/{run_id}"
    for name, frame in frames.items():
        ctx.lake.write_table(f"{prefix}/{name}.parquet", frame)
    return prefix


def _store_artifacts(ctx: AppContext, run_id: int, result: BacktestResult) -> str:
    return _store_frames(ctx, run_id, {"equity": result.equity, "trades": result.trades})


def _store_best(
    ctx: AppContext, study: Study, kind: str, params: Mapping[str, Any], extra: dict[str, Any]
) -> BacktestOutcome:
    built, _ = study.signals(params)
    repo = BacktestRepository(ctx.db)
    run_id = repo.start(
        kind,
        study.strategy,
        built.params.model_dump(),
        study.label,
        study.symbols,
        study.period.start,
        study.period.end,
        study.config.model_dump(),
    )
    try:
        result, stats = study.evaluate(params, study.period.start, study.period.end)
        repo.finish(run_id, {**stats, **extra}, _store_artifacts(ctx, run_id, result))
    except BaseException as exc:
        repo.fail(run_id, str(exc))
        raise
    return BacktestOutcome(
        run_id,
        study.strategy,
        built.params.model_dump(),
        study.label,
        len(study.symbols),
        study.period.start,
        study.period.end,
        stats,
        result,
        None,
        {"objective": extra["objective"]},
    )


def _write_report(
    path: Path,
    study: Study,
    built: Strategy,
    result: BacktestResult,
    stats: Mapping[str, Any],
    optimization: OptimizeResult | None = None,
    montecarlo: Mapping[str, Any] | None = None,
) -> Path:
    params = built.params.model_dump()
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, dict))
    window = study.data.bars.filter(
        pl.col("date").is_between(study.period.start, study.period.end)
    ).select("symbol", "date", "close")
    benchmark = equal_weight_benchmark(
        study.prices.between(study.period.start, study.period.end), result.start_capital
    )
    html = render_report(
        title=f"{study.strategy}({shown}) on {study.label}, "
        f"{study.period.start} → {study.period.end}",
        equity=result.equity,
        trades=result.trades,
        stats=stats,
        prices=window,
        benchmark=benchmark,
        params=params,
        config=result.config.model_dump(),
        optimization=optimization.table if optimization else None,
        grid_params=optimization.grid_params if optimization else None,
        objective=optimization.objective if optimization else None,
        montecarlo=montecarlo,
        generated_at=dt.datetime.now(dt.UTC),
    )
    return write_report(path, html)
