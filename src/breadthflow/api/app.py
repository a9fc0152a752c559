"""The FastAPI application: ``/health``, ``/metrics``, ``/execute``, ``/api/v1/…``, the
dashboard (``/ui``, from :mod:`breadthflow.web`) and OpenAPI at ``/docs``.

>>> app = create_app(load_settings())                            # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8083)                 # doctest: +SKIP

Routes are thin: each calls the service function the CLI calls (``services/``). Reads are
open unless ``api_read_requires_token`` is set; writes need a bearer token with the
``write`` or ``admin`` scope (:mod:`breadthflow.api.deps`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response

from breadthflow import __version__
from breadthflow.api import errors
from breadthflow.api.metrics import HttpMetrics, build_registry
from breadthflow.api.routes import API_ROUTERS, ROOT_ROUTERS
from breadthflow.core.config import Settings, get_settings
from breadthflow.services.context import AppContext
from breadthflow.services.health import InProcess

API_PREFIX = "/api/v1"
TAGS = (
    "health", "pipelines", "runs", "signals", "breadth", "backtests", "scans", "data", "alerts",
    "commands", "events",
)  # fmt: skip

DESCRIPTION = """
Market-breadth signals: pipelines and their runs, signals, breadth, backtests, scans,
stored data, alerts, allowlisted commands and live events.

Reads are open (unless the server sets `api_read_requires_token`). Every write needs
`Authorization: Bearer <token>` with a `write` or `admin` token (`breadthflow token
create NAME --scope write`): 401 without one, 403 with a read-only one. Bad payloads get
422 with the field and the reason; domain errors a 4xx with a one-line `detail`.
"""


def _web_router() -> Any | None:
    """``breadthflow.web.router`` when the dashboard package provides one."""
    try:
        module = importlib.import_module("breadthflow.web")
    except ModuleNotFoundError:
        return None
    return getattr(module, "router", None)


def create_app(
    settings: Settings | None = None,
    *,
    include_web: bool = True,
    ctx: AppContext | None = None,
    in_process: Callable[[], InProcess | None] | None = None,
) -> FastAPI:
    """Build the app. ``ctx`` defaults to one over ``settings`` (default: the process
    settings); ``in_process`` reports what the serving process runs itself (scheduler,
    workers) for ``/health``."""
    settings = settings or (ctx.settings if ctx is not None else get_settings())
    ctx = ctx or AppContext(settings)
    app = FastAPI(
        title="BreadthFlow API",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[{"name": name} for name in TAGS],
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.in_process = in_process
    app.state.metrics = build_registry(ctx)
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            allow_credentials=False,
        )
    app.add_middleware(HttpMetrics, registry=app.state.metrics)

    for router in ROOT_ROUTERS:
        app.include_router(router)
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    web = _web_router() if include_web else None
    if web is not None:
        app.include_router(web)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        if web is not None:  # the dashboard, keeping ?token=… for its login
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/ui/{query}", status_code=307)
        return JSONResponse(
            {"name": "breadthflow", "version": __version__, "docs": "/docs", "health": "/health"}
        )

    return app
