"""The research kind: optimisation, walk-forward, Monte Carlo and a report, as records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breadthflow.core.config import get_settings
from breadthflow.pipelines import research as research_mod
from breadthflow.services import backtest as backtest_svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.backtests import BacktestRepository
from breadthflow.store.runs import RunRepository


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    close_all()
    get_settings.cache_clear()
    yield
    close_all()


def make(ctx: AppContext, **parameters: Any) -> None:
    pipelines_svc.create_pipeline(
        ctx,
        {"name": "rs", "kind": "research", "mode": "demo", "schedule": "1d",
         "error_policy": "skip", "parameters": {"mc_paths": 100, **parameters}},
    )  # fmt: skip


def test_a_research_run_produces_its_records_and_a_report() -> None:
    ctx = AppContext()
    make(ctx)

    outcome = pipelines_svc.run_now(ctx, "rs")

    assert outcome.status == "succeeded", outcome.error
    _, steps = pipelines_svc.run_detail(ctx, outcome.run_id)
    assert [s.name for s in steps] == ["fetch", "optimize", "walkforward", "montecarlo", "report"]
    ids = pipelines_svc.list_runs(ctx, "rs")[0].backtest_results
    repo = BacktestRepository(ctx.db)
    kinds = {key: repo.get(ids[key]).kind for key in
             ("optimize_id", "walkforward_id", "backtest_id", "montecarlo_id")}  # fmt: skip
    assert kinds == {"optimize_id": "optimize", "walkforward_id": "walkforward",
                     "backtest_id": "run", "montecarlo_id": "montecarlo"}  # fmt: skip
    assert all(repo.get(ids[key]).status == "succeeded" for key in kinds)

    optimized = repo.get(ids["optimize_id"])
    # The best of the grid (coarse + fine) is what was stored, and what Monte Carlo reused.
    table = optimized.stats["table"]
    assert table[0]["sharpe"] == pytest.approx(optimized.stats["sharpe"])
    assert {k: table[0][k] for k in ("fast", "slow")} == ids["best_params"]
    assert repo.get(ids["backtest_id"]).params["fast"] == ids["best_params"]["fast"]
    assert len(table) > 6  # 6 coarse points + the refinements
    assert repo.get(ids["walkforward_id"]).stats["folds"]
    assert repo.get(ids["montecarlo_id"]).stats["paths"] == 100

    report = Path(ids["report"])
    html = report.read_text("utf-8")
    assert report.parent == ctx.settings.home / "reports" / "rs"
    for section in ("Optimisation", "Walk-forward", "Monte Carlo", "Trade list"):
        assert section in html


def test_a_resumed_research_run_redoes_only_the_unfinished_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = AppContext()
    make(ctx, report=False)
    real = backtest_svc.monte_carlo_study
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker died in Monte Carlo")
        return real(*args, **kwargs)

    monkeypatch.setattr(research_mod.backtest_svc, "monte_carlo_study", flaky)
    first = pipelines_svc.run_now(ctx, "rs")
    assert first.status == "failed"
    assert RunRepository(ctx.db).requeue(first.run_id)
    stored = pipelines_svc.get_pipeline(ctx, "rs")

    second = pipelines_svc.lifecycle_for(ctx, stored, first.run_id, heartbeat_interval=0).run()

    assert second.status == "succeeded", second.error
    repo = BacktestRepository(ctx.db)
    assert repo.count(kind="optimize") == 1 and repo.count(kind="walkforward") == 1
    assert repo.count(kind="montecarlo") == 1


def test_a_grid_of_unknown_parameters_fails_with_one_line() -> None:
    ctx = AppContext()
    make(ctx, grid={"speed": [1, 2]})
    outcome = pipelines_svc.run_now(ctx, "rs")
    assert outcome.status == "failed"
    assert "unknown parameter 'speed' for strategy sma_cross" in (outcome.error or "")
