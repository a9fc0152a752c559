"""``GET /api/v1/events``: server-sent events of run state changes, new signals, alerts,
and (with ``?run_id=``) that run's log lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from breadthflow.api.deps import Ctx, Reader
from breadthflow.services import live as svc

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    ctx: Ctx,
    _: Reader,
    run_id: Annotated[
        str | None, Query(max_length=64, description="Also stream this run's log lines")
    ] = None,
    types: Annotated[
        str | None, Query(description="Comma-separated subset of run,signals,alert,log")
    ] = None,
) -> EventSourceResponse:
    """A stream of ``event: run|signals|alert|log`` with JSON ``data``. It starts at "now"
    (with ``run_id``: from the run's first log line) and sends a comment every 15 s to keep
    proxies from closing it. Log lines carry ``id: log-<n>``: a client reconnecting with
    ``Last-Event-ID`` (EventSource does) continues after the last line it saw."""
    cursor = await run_in_threadpool(svc.open_cursor, ctx, run_id, types)
    resume = request.headers.get("last-event-id", "")
    if run_id is not None and resume.startswith("log-") and resume[4:].isdigit():
        cursor.log_id = int(resume[4:])  # a reconnecting client continues after its last line
    interval = ctx.settings.api_events_poll_seconds

    async def stream() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="connected")
        while True:
            found = await run_in_threadpool(svc.poll, ctx, cursor)
            for event in found:
                ident = f"log-{event.data['id']}" if event.type == "log" else None
                yield ServerSentEvent(data=_dumps(event.data), event=event.type, id=ident)
            if await request.is_disconnected():
                return
            await anyio.sleep(interval)

    return EventSourceResponse(stream(), ping=15)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
