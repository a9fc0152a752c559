"""``/api/v1/backtests``: stored backtests, their equity curve, trades and HTML report."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from breadthflow.api.deps import Ctx, Reader
from breadthflow.api.schemas import MAX_ID, Page, RowId, page
from breadthflow.core.errors import NotFoundError
from breadthflow.services.context import AppContext
from breadthflow.store._json import json_safe
from breadthflow.store.backtests import BacktestSummary

router = APIRouter(prefix="/backtests", tags=["backtests"])


def _svc() -> Any:
    # The engine pulls in numba: import it when a backtest route is used, not at start.
    from breadthflow.services import backtest

    return backtest


def _frame(ctx: AppContext, backtest_id: int, name: str) -> tuple[BacktestSummary, pl.DataFrame]:
    summary, frames = _svc().show_backtest(ctx, backtest_id)
    if name not in frames:
        raise NotFoundError(
            f"backtest {backtest_id} ({summary.kind}, {summary.status}) has no stored {name}"
        )
    return summary, frames[name]


def _records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return json_safe(frame.with_columns(pl.col(pl.Float64).fill_nan(None)).to_dicts())


@router.get("", response_model=Page[BacktestSummary])
def list_backtests(
    ctx: Ctx,
    _: Reader,
    strategy: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(description="run, optimize, walkforward, montecarlo")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Backtests, newest first."""
    items, total = _svc().list_backtests(ctx, limit, offset, strategy, kind)
    return page(items, total, limit, offset)


@router.get("/{backtest_id}", response_model=BacktestSummary)
def get_backtest(backtest_id: RowId, ctx: Ctx, _: Reader) -> BacktestSummary:
    from breadthflow.store.backtests import BacktestRepository

    return BacktestRepository(ctx.db).get(backtest_id)


@router.get("/{backtest_id}/equity")
def equity(backtest_id: RowId, ctx: Ctx, _: Reader) -> dict[str, Any]:
    """The equity curve: one row per date (equity, cash, exposure, … as stored)."""
    _, frame = _frame(ctx, backtest_id, "equity")
    return {"backtest_id": backtest_id, "columns": frame.columns, "rows": _records(frame)}


@router.get("/{backtest_id}/trades")
def trades(
    backtest_id: RowId,
    ctx: Ctx,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Closed (and open) trades in the order they were entered."""
    _, frame = _frame(ctx, backtest_id, "trades")
    return page(_records(frame.slice(offset, limit)), frame.height, limit, offset)


@router.get("/{backtest_id}/report", response_class=HTMLResponse)
def report(backtest_id: RowId, ctx: Ctx, _: Reader) -> HTMLResponse:
    """The self-contained HTML report of a stored backtest (equity, drawdown, stats,
    trades), rendered from what was stored."""
    from breadthflow.backtest.report import render_report

    summary, frames = _svc().show_backtest(ctx, backtest_id)
    if "equity" not in frames or "trades" not in frames:
        raise NotFoundError(
            f"backtest {backtest_id} ({summary.kind}, {summary.status}) has no stored equity "
            "curve and trades to report on"
        )
    params = ", ".join(
        f"{k}={v}" for k, v in summary.params.items() if not isinstance(v, dict | list)
    )
    html = render_report(
        title=f"{summary.strategy}({params}) on {summary.universe}, "
        f"{summary.start} → {summary.end}",
        equity=frames["equity"],
        trades=frames["trades"],
        stats=summary.stats or {},
        params=summary.params,
        config=summary.config,
        generated_at=dt.datetime.now(dt.UTC),
    )
    return HTMLResponse(html)
