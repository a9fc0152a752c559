"""Pipeline services: define pipelines, run one now, inspect runs and their logs.

One implementation for every interface (CLI, API, dashboard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from breadthflow.core.errors import InvalidInputError
from breadthflow.pipelines.definitions import Kind, PipelineDefinition, definition_from
from breadthflow.pipelines.lifecycle import PipelineLifecycle, RunOutcome
from breadthflow.pipelines.locks import pipeline_lock
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.services.context import AppContext
from breadthflow.store.models import utcnow
from breadthflow.store.pipelines import PipelineRepository, StoredPipeline
from breadthflow.store.runs import LogLine, RunRepository, RunSummary, StepSummary


def next_run_for(
    definition: PipelineDefinition, now: dt.datetime | None = None
) -> dt.datetime | None:
    """When a periodic, active pipeline is next due (None otherwise)."""
    schedule = definition.parsed_schedule()
    if schedule is None or not definition.is_active or definition.trigger_mode != "periodic":
        return None
    return schedule.next_after(now or utcnow())


def create_pipeline(ctx: AppContext, values: Mapping[str, Any]) -> StoredPipeline:
    definition = definition_from(dict(values))
    repo = PipelineRepository(ctx.db)
    repo.create(definition.model_dump(mode="json"), next_run_for(definition))
    return repo.get(definition.name)


def update_pipeline(ctx: AppContext, name: str, changes: Mapping[str, Any]) -> StoredPipeline:
    """Change some fields of a definition; the result is validated as a whole."""
    repo = PipelineRepository(ctx.db)
    current = repo.get(name).definition()
    if "name" in changes and changes["name"] != name:
        raise InvalidInputError("a pipeline cannot be renamed — create a new one instead")
    definition = definition_from({**current, **changes})
    repo.update(name, definition.model_dump(mode="json"), next_run_for(definition))
    return repo.get(name)


def set_active(ctx: AppContext, name: str, active: bool) -> StoredPipeline:
    repo = PipelineRepository(ctx.db)
    definition = definition_from({**repo.get(name).definition(), "is_active": active})
    repo.set_active(name, active, next_run_for(definition))
    return repo.get(name)


def delete_pipeline(ctx: AppContext, name: str) -> None:
    PipelineRepository(ctx.db).delete(name)


def get_pipeline(ctx: AppContext, name: str) -> StoredPipeline:
    return PipelineRepository(ctx.db).get(name)


def list_pipelines(ctx: AppContext) -> list[StoredPipeline]:
    return PipelineRepository(ctx.db).list()


def lifecycle_for(
    ctx: AppContext,
    stored: StoredPipeline,
    run_id: str,
    shutdown: GracefulShutdown | None = None,
    heartbeat_interval: float = 15.0,
) -> PipelineLifecycle:
    """The lifecycle that runs a pipeline of this kind."""
    definition = definition_from(stored.definition())
    repo = RunRepository(ctx.db)
    if definition.kind is Kind.BREADTH:
        from breadthflow.pipelines.breadth import BreadthPipeline

        return BreadthPipeline(ctx, repo, run_id, definition, shutdown=shutdown,
                               heartbeat_interval=heartbeat_interval)  # fmt: skip
    raise InvalidInputError(
        f"pipeline kind '{definition.kind.value}' cannot run yet — only 'breadth' pipelines "
        "run in this version"
    )


def run_now(
    ctx: AppContext, name: str, trigger: str = "manual", payload: Mapping[str, Any] | None = None
) -> RunOutcome:
    """Run a pipeline once, in this process, holding its lock (a second runner of the same
    pipeline is refused with one line)."""
    stored = get_pipeline(ctx, name)
    lock = pipeline_lock(ctx.settings.home, name).acquire(timeout=0)
    try:
        run_id = RunRepository(ctx.db).enqueue(
            stored.id, trigger, dict(payload or {}), stored.definition()
        )
        assert run_id is not None  # no scheduled slot: never a duplicate
        return lifecycle_for(ctx, stored, run_id).run()
    finally:
        lock.release()


def list_runs(
    ctx: AppContext, name: str | None = None, status: str | None = None, limit: int = 20,
    offset: int = 0,
) -> list[RunSummary]:  # fmt: skip
    pipeline_id = get_pipeline(ctx, name).id if name else None
    return RunRepository(ctx.db).list(pipeline_id=pipeline_id, status=status, limit=limit,
                                      offset=offset)  # fmt: skip


def run_detail(ctx: AppContext, run_id: str) -> tuple[RunSummary, list[StepSummary]]:
    repo = RunRepository(ctx.db)
    return repo.get(run_id), repo.steps(run_id)


def latest_run_id(ctx: AppContext, name: str | None = None) -> str | None:
    runs = list_runs(ctx, name, limit=1)
    return runs[0].run_id if runs else None


def run_logs(ctx: AppContext, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogLine]:
    return RunRepository(ctx.db).logs(run_id, after_id=after_id, limit=limit)
