"""Pipeline services: define pipelines, run one now, inspect runs and their logs.

One implementation for every interface (CLI, API, dashboard).
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from breadthflow.core.errors import InvalidInputError
from breadthflow.pipelines.alerts import AlertPolicy
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


def _checked(definition: PipelineDefinition) -> PipelineDefinition:
    """Checks beyond the definition model: the ``alerts`` parameter's thresholds."""
    AlertPolicy().for_pipeline(definition.parameters)
    return definition


def create_pipeline(ctx: AppContext, values: Mapping[str, Any]) -> StoredPipeline:
    definition = _checked(definition_from(dict(values)))
    repo = PipelineRepository(ctx.db)
    repo.create(definition.model_dump(mode="json"), next_run_for(definition))
    return repo.get(definition.name)


def update_pipeline(ctx: AppContext, name: str, changes: Mapping[str, Any]) -> StoredPipeline:
    """Change some fields of a definition; the result is validated as a whole."""
    repo = PipelineRepository(ctx.db)
    current = repo.get(name).definition()
    if "name" in changes and changes["name"] != name:
        raise InvalidInputError("a pipeline cannot be renamed — create a new one instead")
    definition = _checked(definition_from({**current, **changes}))
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
    from breadthflow.services.alerts import alert_monitor, notifier_for

    definition = definition_from(stored.definition())
    repo = RunRepository(ctx.db)
    alerting = {
        "notifier": notifier_for(ctx, definition.notifications),
        "monitor": alert_monitor(ctx),
    }
    if definition.kind.value not in LIFECYCLES:
        raise InvalidInputError(
            f"pipeline kind '{definition.kind.value}' cannot run yet — known: "
            f"{', '.join(LIFECYCLES)}"
        )
    module, _, name = LIFECYCLES[definition.kind.value].partition(":")
    lifecycle = getattr(importlib.import_module(module), name)
    return lifecycle(ctx, repo, run_id, definition, shutdown=shutdown,
                     heartbeat_interval=heartbeat_interval, **alerting)  # fmt: skip


#: The lifecycle class of each pipeline kind ("module:Class"), imported when a run starts.
LIFECYCLES: dict[str, str] = {
    Kind.BREADTH.value: "breadthflow.pipelines.breadth:BreadthPipeline",
    Kind.RESEARCH.value: "breadthflow.pipelines.research:ResearchPipeline",
    Kind.TRAINING.value: "breadthflow.pipelines.training:TrainingPipeline",
    Kind.PAPER.value: "breadthflow.pipelines.paper:PaperPipeline",
}


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


class PipelineStatus(BaseModel):
    """One pipeline in :func:`status_overview`."""

    model_config = ConfigDict(frozen=True)

    pipeline: StoredPipeline
    last_run: dict[str, Any]
    open_alerts: int


class StatusOverview(BaseModel):
    """What ``pipeline status`` shows: the runner of this home and every pipeline."""

    runner_pid: int | None
    runner_alive: bool
    pipelines: list[PipelineStatus]


def status_overview(ctx: AppContext) -> StatusOverview:
    """The runner's state (PID file of this home) and, per pipeline, its last run and
    open alerts — read from the metadata DB (SQLite or PostgreSQL)."""
    from breadthflow.pipelines.runner import runner_state
    from breadthflow.store.alerts import AlertRepository

    state = runner_state(ctx)
    open_alerts: dict[int | None, int] = {}
    for alert in AlertRepository(ctx.db).list(limit=10_000):
        open_alerts[alert.pipeline_id] = open_alerts.get(alert.pipeline_id, 0) + 1
    repo = RunRepository(ctx.db)
    rows = []
    for stored in list_pipelines(ctx):
        last = repo.last_run(stored.id)
        rows.append(
            PipelineStatus(
                pipeline=stored,
                last_run={
                    "last_run": last.run_id if last else None,
                    "last_status": last.status if last else None,
                    "last_start": last.start_time if last else None,
                    "last_duration_s": last.duration if last else None,
                },
                open_alerts=open_alerts.get(stored.id, 0),
            )
        )
    return StatusOverview(runner_pid=state.pid, runner_alive=state.alive, pipelines=rows)
