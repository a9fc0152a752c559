"""The trigger dispatcher as a service: build it from settings, run it, read its metrics.

A running dispatcher writes its metrics every couple of seconds to
``$HOME/run/dispatcher-<consumer>.json`` (atomically), so ``dispatcher status``, the API's
``/metrics`` and the dashboard's Triggers page can show them whichever process runs it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from breadthflow.bus import open_bus
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.services import data as data_svc
from breadthflow.services.context import AppContext
from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig

#: A snapshot older than this belongs to a dispatcher that is gone.
STALE_SECONDS = 30.0


def dispatcher_config(ctx: AppContext, **overrides: Any) -> DispatcherConfig:
    """The dispatcher's settings (``dispatcher_*`` in the config), with overrides."""
    s = ctx.settings
    values: dict[str, Any] = {
        "batch_size": s.dispatcher_batch_size,
        "batch_timeout": s.dispatcher_batch_timeout,
        "cache_refresh": s.dispatcher_cache_refresh,
        "group": s.dispatcher_group,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DispatcherConfig(**values)


def make_dispatcher(ctx: AppContext, consumer: str | None = None, **overrides: Any) -> Dispatcher:
    """A dispatcher on the configured bus (``BREADTHFLOW_BUS_URL``) and metadata DB."""
    bus = open_bus(ctx.settings.bus_url, ctx.settings, ctx.db)
    return Dispatcher(
        bus,
        ctx.db,
        dispatcher_config(ctx, **overrides),
        consumer=consumer,
        universe_symbols=lambda name: data_svc.resolve_symbols(ctx, None, name),
    )


def metrics_dir(ctx: AppContext) -> Path:
    return ctx.settings.home / "run"


def write_metrics(ctx: AppContext, dispatcher: Dispatcher) -> Path:
    """Write the dispatcher's metrics snapshot where status readers look (atomic)."""
    folder = metrics_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dispatcher-{dispatcher.consumer}.json"
    snapshot = {
        "consumer": dispatcher.consumer,
        "pid": os.getpid(),
        "bus": dispatcher.bus.url,
        "topic": dispatcher.config.topic,
        "group": dispatcher.config.group,
        "pipelines": dispatcher.index.pipelines,
        "tickers": len(dispatcher.index.by_ticker),
        "updated_at": dt.datetime.now(dt.UTC).isoformat(),
        **dispatcher.metrics.snapshot(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot, indent=1))
    tmp.replace(path)
    return path


def dispatcher_status(ctx: AppContext) -> list[dict[str, Any]]:
    """Metrics of every dispatcher that reported in the last ``STALE_SECONDS``."""
    folder = metrics_dir(ctx)
    if not folder.is_dir():
        return []
    now = dt.datetime.now(dt.UTC)
    found = []
    for path in sorted(folder.glob("dispatcher-*.json")):
        try:
            snapshot = json.loads(path.read_text())
            updated = dt.datetime.fromisoformat(snapshot["updated_at"])
        except (OSError, ValueError, KeyError):
            continue
        snapshot["alive"] = (now - updated).total_seconds() < STALE_SECONDS
        found.append(snapshot)
    return found


def run_dispatcher(
    ctx: AppContext,
    stop: threading.Event | GracefulShutdown | None = None,
    consumer: str | None = None,
    **overrides: Any,
) -> Dispatcher:
    """Run a dispatcher until ``stop``; returns it (with its final metrics)."""
    dispatcher = make_dispatcher(ctx, consumer, **overrides)
    try:
        dispatcher.run_forever(stop, on_tick=lambda d: write_metrics(ctx, d))
    finally:
        dispatcher.close()
        dispatcher.bus.close()
    return dispatcher
