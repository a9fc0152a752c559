"""``/api/v1/signals``: list with filters and pagination, summary, export (CSV/Parquet),
and the strategy catalogue."""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from breadthflow.api.deps import Ctx, Reader
from breadthflow.api.schemas import MAX_ID, Page, page
from breadthflow.core.models import Signal
from breadthflow.services import signals as svc
from breadthflow.store.signals import SignalFilter, SignalRepository, StrategySummary

router = APIRouter(tags=["signals"])


def signal_filter(
    strategy: Annotated[str | None, Query(max_length=64)] = None,
    symbol: Annotated[
        str | None, Query(max_length=64, description="A symbol, or a universe name")
    ] = None,
    signal_type: Annotated[str | None, Query(description="BUY, SELL or HOLD")] = None,
    since: Annotated[str | None, Query(description="Dated on/after, YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(description="Dated on/before, YYYY-MM-DD")] = None,
    run_id: Annotated[str | None, Query(max_length=64, description="Pipeline run id")] = None,
) -> SignalFilter:
    return svc.signal_filter(strategy, symbol, signal_type, since, until, run_id)


Where = Annotated[SignalFilter, Depends(signal_filter)]


@router.get("/signals", response_model=Page[Signal])
def list_signals(
    ctx: Ctx,
    _: Reader,
    where: Where,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Stored signals, newest date first."""
    items, total = svc.list_signals(ctx, where, limit, offset)
    return page(items, total, limit, offset)


@router.get("/signals/summary", response_model=list[StrategySummary])
def summary(ctx: Ctx, _: Reader, where: Where) -> list[StrategySummary]:
    """Per strategy: counts by type, symbols, first and last date."""
    return svc.summarize_signals(ctx, where)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@router.get(
    "/signals/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def export(ctx: Ctx, _: Reader, where: Where, format: ExportFormat = ExportFormat.csv) -> Response:
    """Every matching signal as a CSV or Parquet download (``factors`` as JSON text), the
    same columns as ``breadthflow signals export``."""
    frame = svc.signals_frame(SignalRepository(ctx.db).list(where, limit=None))
    buffer = io.BytesIO()
    if format is ExportFormat.csv:
        frame.write_csv(buffer)
        media = "text/csv; charset=utf-8"
    else:
        frame.write_parquet(buffer, compression="zstd")
        media = "application/vnd.apache.parquet"
    return Response(
        buffer.getvalue(),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="signals.{format.value}"',
            "X-Row-Count": str(frame.height),
        },
    )


@router.get("/strategies")
def strategies(ctx: Ctx, _: Reader) -> dict[str, Any]:
    """Registered strategies with their effective parameters and the config version."""
    return svc.strategy_catalog(ctx)
