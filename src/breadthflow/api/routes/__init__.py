"""The API's routers, one module per resource; :data:`ROUTERS` is what the app includes."""

from __future__ import annotations

from breadthflow.api.routes import (
    alerts,
    backtests,
    breadth,
    commands,
    data,
    events,
    health,
    pipelines,
    runs,
    scans,
    signals,
)

#: Routers under ``/api/v1``.
API_ROUTERS = (
    pipelines.router,
    runs.router,
    signals.router,
    breadth.router,
    backtests.router,
    scans.router,
    data.router,
    alerts.router,
    commands.router,
    events.router,
)
#: Routers at the root: ``/health``, ``/metrics``, ``/execute``.
ROOT_ROUTERS = (health.router, commands.root_router)
