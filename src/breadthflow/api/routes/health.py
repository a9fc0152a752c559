"""``GET /health`` (every configured backend, checked for real) and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from breadthflow.api.deps import Ctx, Reader
from breadthflow.services.health import HealthReport, check_health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthReport,
    responses={503: {"description": "the database, lake, bus or executor is down"}},
)
def health(request: Request, ctx: Ctx) -> JSONResponse:
    """Each backend's status: ``ok``, ``degraded`` (runner or workers) or ``down``.
    503 when a backend the API needs is down."""
    local = getattr(request.app.state, "in_process", None)
    report = check_health(ctx, local() if callable(local) else None)
    code = 503 if report.status == "down" else 200
    return JSONResponse(report.model_dump(mode="json"), status_code=code)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, _: Reader) -> Response:
    """Prometheus text exposition."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
