"""``/api/v1/runs``: run history (filters, pagination), one run with its steps, its logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from breadthflow.api.deps import Ctx, Reader, Writer
from breadthflow.api.schemas import MAX_ID, Page, page
from breadthflow.services import pipeline_control as control
from breadthflow.services import pipelines as svc
from breadthflow.store.runs import LogLine, RunSummary, StepSummary

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("", response_model=Page[RunSummary])
def list_runs(
    ctx: Ctx,
    _: Reader,
    pipeline: Annotated[str | None, Query(max_length=64, description="Pipeline name")] = None,
    status: Annotated[str | None, Query(description="queued, running, succeeded, …")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Runs, newest first."""
    items = svc.list_runs(ctx, pipeline, status, limit, offset)
    total = control.count_runs(ctx, pipeline, status)
    return page(items, total, limit, offset)


@router.get("/{run_id}")
def get_run(run_id: str, ctx: Ctx, _: Reader) -> dict[str, Any]:
    """The run and its steps in order."""
    summary, steps = svc.run_detail(ctx, run_id)
    return {
        **summary.model_dump(mode="json"),
        "steps": [s.model_dump(mode="json") for s in steps],
    }


@router.get("/{run_id}/steps", response_model=list[StepSummary])
def get_steps(run_id: str, ctx: Ctx, _: Reader) -> list[StepSummary]:
    return svc.run_detail(ctx, run_id)[1]


@router.get("/{run_id}/logs", response_model=list[LogLine])
def get_logs(
    run_id: str,
    ctx: Ctx,
    _: Reader,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="Only lines after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[LogLine]:
    """Log lines in order; poll with ``after_id`` = the last id seen (or use the events
    stream with ``?run_id=``)."""
    svc.run_detail(ctx, run_id)  # 404 for an unknown run rather than an empty list
    return svc.run_logs(ctx, run_id, after_id, limit)


@router.post("/{run_id}/cancel", response_model=RunSummary)
def cancel(run_id: str, ctx: Ctx, _: Writer) -> RunSummary:
    """Cancel a queued run, or ask a running one to stop after its current unit of work."""
    return control.cancel_run(ctx, run_id)
