"""The ``research`` kind: fetch → optimize → walkforward → montecarlo → report.

For the pipeline's universe, strategy and parameters, each run:

1. **fetch** (per symbol, checkpointed): the bars the lake lacks, warm-up included.
2. **optimize**: grid search over ``grid``, coarse then fine (``backtest.research``),
   ranked by ``objective``; the best parameters are backtested and stored (a backtest
   record of kind ``optimize``).
3. **walkforward**: optimise on each ``train_days`` window, trade the next ``test_days``
   with the winner, chain the test windows into one out-of-sample curve (kind
   ``walkforward``).
4. **montecarlo**: the best parameters backtested again and resampled ``mc_paths``
   times (kinds ``run`` and ``montecarlo``).
5. **report**: one HTML report of the study — the best run's equity, trades and stats,
   the optimisation table (a heat map for two parameters), the walk-forward folds and the
   Monte Carlo fan — built from the stored records, at
   ``$BREADTHFLOW_HOME/reports/<pipeline>/<run_id>.html``.

Every step is recorded and checkpointed with the ids of its backtest records, so a
resumed run redoes only what was not finished. The ids go on the run
(``backtest_results``). Parameters and defaults: :data:`DEFAULTS`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl

from breadthflow.backtest.report import render_report, write_report
from breadthflow.backtest.research import check_monte_carlo, check_objective, grid_combinations
from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.pipelines._market import SAMPLE_END, SAMPLE_START, MarketPipeline
from breadthflow.services import backtest as backtest_svc
from breadthflow.services.signals import strategy_config
from breadthflow.store._json import json_safe

DEFAULTS: dict[str, Any] = {
    "strategy": "sma_cross",
    "strategy_params": {},  # fixed parameters under the grid
    "grid": {"fast": [5, 10, 20], "slow": [30, 50]},
    "objective": "sharpe",
    "refine": True,  # the fine pass around the best coarse point
    "min_trades": 0,
    "train_days": 126,  # walk-forward training window, trading days
    "test_days": 42,  # walk-forward test window, trading days
    "anchored": False,
    "mc_paths": 500,
    "mc_method": "trades",  # trades | daily
    "mc_block": 20,
    "seed": 7,
    "ruin": 0.5,
    "hl_window": 50,
    "backtest": {},  # engine settings (docs/backtesting.md): fees, slippage, sizing, stops …
    "report": True,
}
DEMO: dict[str, Any] = {"universe": "demo_small", "start": "2009-11-02", "end": SAMPLE_END}
SHOWN = ("total_return_pct", "cagr_pct", "sharpe", "max_drawdown_pct", "n_trades")


class ResearchPipeline(MarketPipeline):
    """Optimisation, walk-forward, Monte Carlo and a report, each a resumable step."""

    KIND = "research"
    DEFAULTS = DEFAULTS
    DEMO = DEMO

    def _check(self) -> list[dict[str, Any]]:
        s = self.settings
        for name, least in (
            ("mc_paths", 1), ("mc_block", 1), ("seed", 0), ("min_trades", 0), ("train_days", 2),
            ("test_days", 1), ("hl_window", 2),
        ):  # fmt: skip
            self.integer(name, least)
        self.number("ruin")
        if not isinstance(s["backtest"], dict) or not isinstance(s["strategy_params"], dict):
            raise InvalidInputError(
                "invalid research parameters: backtest and strategy_params must be tables "
                "of NAME = VALUE"
            )
        check_objective(str(s["objective"]))
        check_monte_carlo(
            int(s["mc_paths"]), str(s["mc_method"]), int(s["mc_block"]), float(s["ruin"])
        )
        grid = s["grid"]
        if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
            raise InvalidInputError(
                f"invalid grid {grid!r} — expected a table NAME = [V1, V2, …], e.g. "
                '{"fast": [5, 10], "slow": [30, 50]}'
            )
        return grid_combinations(grid)

    def execute(self) -> None:
        s = self.settings
        combos = self._check()
        symbols, universe = self.universe()
        start, end = self.pinned_range("optimize")
        strategies = strategy_config(self.ctx)
        base = dict(s["strategy_params"])
        warmups = [strategies.build(s["strategy"], base).warmup_bars()]
        for combo in combos:
            try:
                warmups.append(strategies.build(s["strategy"], {**base, **combo}).warmup_bars())
            except BreadthFlowError:  # a combination the strategy refuses (fast >= slow)
                continue
        fetch_from = start - dt.timedelta(days=math.ceil(max(warmups) * 7 / 5) + 10)
        if self.definition.mode.value == "demo":
            fetch_from = max(fetch_from, dt.date.fromisoformat(SAMPLE_START))
        present = self.fetch_step(symbols, fetch_from, end)
        chosen = {"universe": universe} if universe else {"symbols": present}
        study = backtest_svc.prepare_study(
            self.ctx, s["strategy"], start, end, params=base, config=s["backtest"],
            hl_window=int(s["hl_window"]), warmup_params=combos, **chosen,
        )  # fmt: skip
        grid = backtest_svc.typed_grid(
            study, {k: [str(v) for v in vs] for k, vs in s["grid"].items()}
        )
        objective = str(s["objective"])

        def optimize() -> dict[str, Any]:
            best, found = backtest_svc.optimize_study(
                self.ctx, study, grid, objective, bool(s["refine"]), int(s["min_trades"])
            )
            return json_safe(
                {
                    "backtest_id": best.id,
                    "range_start": start,
                    "range_end": end,
                    "best_params": found.best,
                    "combinations": found.table.height,
                    "skipped": len(found.skipped),
                    **{k: best.stats.get(k) for k in SHOWN},
                }
            )

        optimized = self.run_step("optimize", optimize)

        def walkforward() -> dict[str, Any]:
            wf_id, found = backtest_svc.walk_forward_study(
                self.ctx, study, grid, int(s["train_days"]), int(s["test_days"]), objective,
                bool(s["anchored"]),
            )  # fmt: skip
            return json_safe(
                {
                    "backtest_id": wf_id,
                    "folds": found.folds.height,
                    "in_sample": found.in_sample,
                    "out_of_sample": found.out_of_sample,
                    "degradation": found.degradation,
                }
            )

        walked = self.run_step("walkforward", walkforward)

        def montecarlo() -> dict[str, Any]:
            best_study = backtest_svc.prepare_study(
                self.ctx, s["strategy"], start, end,
                params={**base, **optimized["best_params"]}, config=s["backtest"],
                hl_window=int(s["hl_window"]), **chosen,
            )  # fmt: skip
            outcome, mc = backtest_svc.monte_carlo_study(
                self.ctx, best_study, int(s["mc_paths"]), str(s["mc_method"]),
                int(s["mc_block"]), int(s["seed"]), float(s["ruin"]),
            )  # fmt: skip
            return json_safe(
                {
                    "backtest_id": outcome.id,
                    "montecarlo_id": outcome.extra["montecarlo_id"],
                    "prob_ruin": mc["prob_ruin"],
                    "final_return_pct": mc["final_return_pct"],
                }
            )

        sampled = self.run_step("montecarlo", montecarlo)
        results = {
            "optimize_id": optimized["backtest_id"],
            "walkforward_id": walked["backtest_id"],
            "backtest_id": sampled["backtest_id"],
            "montecarlo_id": sampled["montecarlo_id"],
            "best_params": optimized["best_params"],
            "objective": objective,
            **{k: optimized.get(k) for k in SHOWN},
            "out_of_sample": walked.get("out_of_sample"),
        }
        if s["report"]:
            reported = self.run_step("report", lambda: self._report(study.label, results))
            results["report"] = reported["report"]
        self.backtest_results = results

    def _report(self, label: str, ids: dict[str, Any]) -> dict[str, Any]:
        """One HTML report, from the stored records (so a resumed run can write it)."""
        best, frames = backtest_svc.show_backtest(self.ctx, ids["optimize_id"])
        walked, _ = backtest_svc.show_backtest(self.ctx, ids["walkforward_id"])
        sampled, mc_frames = backtest_svc.show_backtest(self.ctx, ids["montecarlo_id"])
        stats = dict(best.stats or {})
        table = pl.DataFrame(stats.pop("table", []), infer_schema_length=None)
        grid = stats.pop("grid", {})
        stats.pop("objective", None)
        montecarlo = {k: v for k, v in (sampled.stats or {}).items() if k != "backtest_id"}
        if "fan" in mc_frames:
            montecarlo["fan"] = mc_frames["fan"]
        folds = pl.DataFrame((walked.stats or {}).get("folds", []), infer_schema_length=None)
        shown = ", ".join(f"{k}={v}" for k, v in ids["best_params"].items())
        html = render_report(
            title=f"Research: {best.strategy}({shown}) on {label}, {best.start} → {best.end}",
            equity=frames.get("equity", pl.DataFrame()),
            trades=frames.get("trades", pl.DataFrame()),
            stats=stats,
            params=best.params,
            config=best.config,
            optimization=table if table.height else None,
            grid_params=list(grid),
            objective=ids["objective"],
            montecarlo=montecarlo,
            walkforward=folds if folds.height else None,
            generated_at=dt.datetime.now(dt.UTC),
        )
        folder = self.ctx.settings.home / "reports" / self.definition.name
        folder.mkdir(parents=True, exist_ok=True)
        path = write_report(folder / f"{self.run_id}.html", html)
        return {"report": str(path), "bytes": len(html.encode())}
