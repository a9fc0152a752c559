"""``/api/v1/alerts``: fired alerts (open by default) and acknowledging one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from breadthflow.api.deps import Ctx, Reader, Writer
from breadthflow.api.schemas import RowId
from breadthflow.services import alerts as svc
from breadthflow.store.alerts import StoredAlert

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=list[StoredAlert])
def list_alerts(
    ctx: Ctx,
    _: Reader,
    pipeline: Annotated[str | None, Query(max_length=64)] = None,
    include_acknowledged: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[StoredAlert]:
    """Open alerts, newest first (``include_acknowledged`` for all)."""
    return svc.list_alerts(ctx, pipeline, include_acknowledged, limit)


@router.post("/{alert_id}/acknowledge")
def acknowledge(alert_id: RowId, ctx: Ctx, _: Writer) -> dict[str, Any]:
    """Acknowledge an alert; ``was_open`` is false when it had been acknowledged already."""
    alert, was_open = svc.acknowledge(ctx, alert_id)
    return {"alert": alert.model_dump(mode="json"), "was_open": was_open}
