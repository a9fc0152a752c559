"""``/api/v1/pipelines``: definitions (CRUD) and control (start, stop, run-now, enable,
disable). Reads are open; every change needs a write token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import ValidationError

from breadthflow.api.deps import Ctx, Reader, Writer
from breadthflow.api.errors import payload_errors
from breadthflow.api.schemas import PipelineChanges, PipelineCreate
from breadthflow.pipelines.definitions import PipelineDefinition
from breadthflow.services import pipeline_control as control
from breadthflow.services import pipelines as svc
from breadthflow.store.pipelines import StoredPipeline
from breadthflow.store.runs import RunSummary

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[StoredPipeline])
def list_pipelines(ctx: Ctx, _: Reader) -> list[StoredPipeline]:
    return svc.list_pipelines(ctx)


@router.post("", response_model=StoredPipeline, status_code=status.HTTP_201_CREATED)
def create_pipeline(body: PipelineCreate, ctx: Ctx, _: Writer) -> StoredPipeline:
    """Define a pipeline ([pipelines.md](pipelines.md)); omitted fields take defaults."""
    try:
        definition = PipelineDefinition.model_validate(body.model_dump(exclude_unset=True))
    except ValidationError as exc:
        raise payload_errors(exc) from None
    return svc.create_pipeline(ctx, definition.model_dump(mode="json"))


@router.get("/{name}", response_model=StoredPipeline)
def get_pipeline(name: str, ctx: Ctx, _: Reader) -> StoredPipeline:
    return svc.get_pipeline(ctx, name)


@router.patch("/{name}", response_model=StoredPipeline)
def update_pipeline(name: str, body: PipelineChanges, ctx: Ctx, _: Writer) -> StoredPipeline:
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        from breadthflow.core.errors import InvalidInputError

        raise InvalidInputError("nothing to change — give at least one field")
    return svc.update_pipeline(ctx, name, changes)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_pipeline(name: str, ctx: Ctx, _: Writer) -> Response:
    svc.delete_pipeline(ctx, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/enable", response_model=StoredPipeline)
def enable(name: str, ctx: Ctx, _: Writer) -> StoredPipeline:
    return svc.set_active(ctx, name, True)


@router.post("/{name}/disable", response_model=StoredPipeline)
def disable(name: str, ctx: Ctx, _: Writer) -> StoredPipeline:
    return svc.set_active(ctx, name, False)


@router.post("/{name}/run-now", response_model=RunSummary, status_code=status.HTTP_202_ACCEPTED)
def run_now(name: str, ctx: Ctx, _: Writer) -> RunSummary:
    """Queue one run now (the runner executes it); the pipeline's active flag is kept."""
    return control.queue_run(ctx, name)


@router.post("/{name}/start", status_code=status.HTTP_202_ACCEPTED)
def start(name: str, ctx: Ctx, _: Writer) -> dict[str, Any]:
    """Enable the pipeline and queue a run now."""
    stored, run = control.start_pipeline(ctx, name)
    return {"pipeline": stored.model_dump(mode="json"), "run": run.model_dump(mode="json")}


@router.post("/{name}/stop")
def stop(name: str, ctx: Ctx, _: Writer) -> dict[str, Any]:
    """Disable the pipeline and cancel its queued and running runs (a running run stops
    after its current unit of work, checkpoints kept)."""
    stored, cancelled = control.stop_pipeline(ctx, name)
    return {
        "pipeline": stored.model_dump(mode="json"),
        "cancelled": [r.run_id for r in cancelled],
    }


@router.get("/{name}/status")
def pipeline_status(name: str, ctx: Ctx, _: Reader) -> dict[str, Any]:
    return control.pipeline_status(ctx, name)
