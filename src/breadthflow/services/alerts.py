"""Alert services: list and acknowledge alerts; build the monitor that fires them.

One implementation for every interface (CLI, API, dashboard).
"""

from __future__ import annotations

from breadthflow.pipelines.alerts import AlertMonitor, AlertPolicy
from breadthflow.pipelines.definitions import Notifications
from breadthflow.pipelines.notify import Notifier
from breadthflow.services.context import AppContext
from breadthflow.store.alerts import AlertRepository, StoredAlert
from breadthflow.store.pipelines import PipelineRepository


def notifier_for(ctx: AppContext, notifications: Notifications) -> Notifier:
    """A pipeline's notifier with the configured SMTP relay."""
    return Notifier.from_settings(notifications, ctx.settings)


def alert_monitor(ctx: AppContext) -> AlertMonitor:
    """The monitor with the configured thresholds and SMTP relay."""
    return AlertMonitor(
        ctx.db,
        AlertPolicy.from_settings(ctx.settings),
        lambda notifications: notifier_for(ctx, notifications),
    )


def list_alerts(
    ctx: AppContext,
    pipeline: str | None = None,
    include_acknowledged: bool = False,
    limit: int = 100,
) -> list[StoredAlert]:
    """Open alerts (all with ``include_acknowledged``), newest first."""
    pipeline_id = PipelineRepository(ctx.db).get(pipeline).id if pipeline else None
    return AlertRepository(ctx.db).list(pipeline_id, include_acknowledged, limit)


def acknowledge(ctx: AppContext, alert_id: int) -> tuple[StoredAlert, bool]:
    """Acknowledge one alert: it stops counting as open, so its rule may fire again.
    Returns the alert and whether it was open."""
    return AlertRepository(ctx.db).acknowledge(alert_id)


def acknowledge_all(ctx: AppContext, pipeline: str | None = None) -> int:
    """Acknowledge every open alert (of one pipeline); returns how many."""
    pipeline_id = PipelineRepository(ctx.db).get(pipeline).id if pipeline else None
    return AlertRepository(ctx.db).acknowledge_all(pipeline_id)


def check_late(ctx: AppContext) -> list[StoredAlert]:
    """Evaluate the ``late`` rule now (the runner's scheduler does it every tick)."""
    return alert_monitor(ctx).check_late()
