"""Steering pipelines from the API and the dashboard: queue a run, start, stop, status.

The runner (``breadthflow serve`` or ``pipeline start``) executes queued runs; these
functions only change the queue and the definitions, so they answer at once.

- :func:`queue_run` ("run now"): one run queued now, whether or not the pipeline is active;
- :func:`start_pipeline`: enable it (the scheduler runs it on its schedule again) and
  queue a run now;
- :func:`stop_pipeline`: disable it and cancel its queued and running runs (a running one
  ends after its current unit of work, checkpoints kept);
- :func:`pipeline_status`: the runner's state and each pipeline's last and next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breadthflow.core.errors import InvalidInputError
from breadthflow.services import pipelines as svc
from breadthflow.services.context import AppContext
from breadthflow.store.pipelines import StoredPipeline
from breadthflow.store.runs import OPEN_STATUSES, RunRepository, RunSummary


def queue_run(
    ctx: AppContext, name: str, trigger: str = "api", payload: Mapping[str, Any] | None = None
) -> RunSummary:
    """Queue one run of ``name`` now and return it (status ``queued``)."""
    stored = svc.get_pipeline(ctx, name)
    repo = RunRepository(ctx.db)
    run_id = repo.enqueue(stored.id, trigger, dict(payload or {}), stored.definition())
    assert run_id is not None  # no scheduled slot: never a duplicate
    return repo.get(run_id)


def start_pipeline(ctx: AppContext, name: str) -> tuple[StoredPipeline, RunSummary]:
    stored = svc.set_active(ctx, name, True)
    return stored, queue_run(ctx, name)


def open_runs(ctx: AppContext, name: str) -> list[RunSummary]:
    pipeline_id = svc.get_pipeline(ctx, name).id
    repo = RunRepository(ctx.db)
    found: list[RunSummary] = []
    for status in OPEN_STATUSES:
        found += repo.list(pipeline_id=pipeline_id, status=status, limit=1000)
    return found


def stop_pipeline(ctx: AppContext, name: str) -> tuple[StoredPipeline, list[RunSummary]]:
    """Disable ``name`` and cancel its unfinished runs; returns them as cancelled."""
    stored = svc.set_active(ctx, name, False)
    repo = RunRepository(ctx.db)
    cancelled = []
    for run in open_runs(ctx, name):
        try:
            cancelled.append(repo.cancel(run.run_id))
        except InvalidInputError:
            continue  # it finished meanwhile
    return stored, cancelled


def cancel_run(ctx: AppContext, run_id: str) -> RunSummary:
    return RunRepository(ctx.db).cancel(run_id)


def pipeline_status(ctx: AppContext, name: str | None = None) -> dict[str, Any]:
    """Whether a runner is alive, and each pipeline's last run and next due time."""
    from breadthflow.pipelines.runner import runner_state

    state = runner_state(ctx)
    chosen = [svc.get_pipeline(ctx, name)] if name else svc.list_pipelines(ctx)
    pipelines = []
    for p in chosen:
        last = svc.list_runs(ctx, p.name, limit=1)
        pipelines.append(
            {
                "name": p.name,
                "kind": p.kind,
                "active": p.is_active,
                "schedule": p.schedule,
                "trigger_mode": p.trigger_mode,
                "next_run_at": p.next_run_at,
                "last_run": last[0].run_id if last else None,
                "last_status": last[0].status if last else None,
                "last_start": last[0].start_time if last else None,
                "last_duration_s": last[0].duration if last else None,
            }
        )
    return {"runner": {"pid": state.pid, "alive": state.alive}, "pipelines": pipelines}


def count_runs(ctx: AppContext, name: str | None = None, status: str | None = None) -> int:
    """How many runs match the filters of :func:`~breadthflow.services.pipelines.list_runs`
    (which checks them)."""
    from sqlalchemy import func, select

    from breadthflow.store.models import PipelineRunRow

    query = select(func.count()).select_from(PipelineRunRow)
    if name:
        query = query.where(PipelineRunRow.pipeline_id == svc.get_pipeline(ctx, name).id)
    if status:
        query = query.where(PipelineRunRow.status == status)
    with ctx.db.session() as session:
        return int(session.scalar(query) or 0)
