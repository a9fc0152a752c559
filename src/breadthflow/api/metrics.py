"""Prometheus metrics (``GET /metrics``).

Run, signal and alert figures are read from the metadata DB at scrape time, so they are
right whichever process ran the work (the runner, a Celery worker, another API replica).
HTTP latency is measured in this process by :class:`HttpMetrics`, labelled by route
template (``/api/v1/runs/{run_id}``), never by raw path, so the label set stays bounded.

| metric | type | labels |
|---|---|---|
| ``breadthflow_runs`` | gauge | ``status`` |
| ``breadthflow_run_duration_seconds`` | histogram | ``pipeline`` |
| ``breadthflow_runs_queued_oldest_seconds`` | gauge | |
| ``breadthflow_signals_generated_total`` | counter | |
| ``breadthflow_signals_stored`` | gauge | ``signal_type`` |
| ``breadthflow_alerts_open`` | gauge | |
| ``breadthflow_http_request_duration_seconds`` | histogram | ``method, route, status`` |
| ``breadthflow_dispatcher_<counter>_total`` | counter | ``consumer`` |
| ``breadthflow_dispatcher_up`` / ``…_consumer_lag`` | gauge | ``consumer`` |
| ``breadthflow_dispatcher_{batch,dispatch}_latency_seconds`` | gauge | ``consumer, quantile`` |
| ``breadthflow_consumer_lag`` | gauge | ``topic, group`` |

Dispatcher figures come from the snapshots every trigger dispatcher writes under
``$HOME/run`` (``services.triggers.dispatcher_status``); consumer lag from the bus itself
(``services.events.lag``). Either being unavailable leaves its metrics out of the scrape
rather than failing it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breadthflow.services.context import AppContext
from breadthflow.store.models import (
    RUN_STATUSES,
    SIGNAL_TYPES,
    AlertRow,
    PipelineRow,
    PipelineRunRow,
    SignalRow,
    utcnow,
)

log = logging.getLogger("breadthflow.api.metrics")

RUN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FINISHED = ("succeeded", "partial", "failed", "cancelled")
#: How long a scrape waits for the bus to report consumer lag.
LAG_TIMEOUT = 2.0


class StoreCollector(Collector):
    """Figures from the metadata DB, computed on each scrape (a few indexed queries)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must not fail because the DB hiccups
            log.warning("metrics from the DB unavailable: %s", exc)

    def _collect(self) -> Iterator[Metric]:
        with self.ctx.db.session() as session:
            by_status = dict(
                session.execute(
                    select(PipelineRunRow.status, func.count()).group_by(PipelineRunRow.status)
                ).all()
            )
            bucket_sums = [
                func.sum(case((PipelineRunRow.duration <= bound, 1), else_=0))
                for bound in RUN_DURATION_BUCKETS
            ]
            durations = session.execute(
                select(
                    PipelineRow.name,
                    func.count(PipelineRunRow.duration),
                    func.sum(PipelineRunRow.duration),
                    *bucket_sums,
                )
                .join(PipelineRow, PipelineRow.id == PipelineRunRow.pipeline_id)
                .where(PipelineRunRow.status.in_(FINISHED), PipelineRunRow.duration.is_not(None))
                .group_by(PipelineRow.name)
            ).all()
            oldest = session.scalar(
                select(func.min(PipelineRunRow.queued_at)).where(PipelineRunRow.status == "queued")
            )
            generated = session.scalar(select(func.sum(PipelineRunRow.signals_generated)))
            stored = dict(
                session.execute(
                    select(SignalRow.signal_type, func.count()).group_by(SignalRow.signal_type)
                ).all()
            )
            open_alerts = session.scalar(
                select(func.count()).select_from(AlertRow).where(AlertRow.acknowledged_at.is_(None))
            )

        runs = GaugeMetricFamily("breadthflow_runs", "Pipeline runs by status", labels=["status"])
        for status in RUN_STATUSES:
            runs.add_metric([status], float(by_status.get(status, 0)))
        yield runs

        histogram = HistogramMetricFamily(
            "breadthflow_run_duration_seconds",
            "Duration of finished pipeline runs",
            labels=["pipeline"],
        )
        for name, count, total, *cumulative in durations:
            buckets: list[tuple[str, float]] = [
                (repr(bound), float(n or 0))
                for bound, n in zip(RUN_DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(count)))
            histogram.add_metric([name], buckets, float(total or 0.0))
        yield histogram

        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "breadthflow_runs_queued_oldest_seconds",
            "How long the oldest queued run has waited (0 when none is queued)",
            value=max(age, 0.0),
        )
        yield CounterMetricFamily(
            "breadthflow_signals_generated",
            "Signals generated by pipeline runs",
            value=float(generated or 0),
        )
        gauge = GaugeMetricFamily(
            "breadthflow_signals_stored", "Signals stored, by type", labels=["signal_type"]
        )
        for kind in SIGNAL_TYPES:
            gauge.add_metric([kind], float(stored.get(kind, 0)))
        yield gauge
        yield GaugeMetricFamily(
            "breadthflow_alerts_open", "Alerts not acknowledged yet", value=float(open_alerts or 0)
        )


DISPATCHER_COUNTERS = (
    "received", "signals", "matched", "enqueued", "skipped", "invalid", "batches",
    "db_queries", "index_refreshes", "bus_errors",
)  # fmt: skip


class DispatcherCollector(Collector):
    """Trigger dispatchers' counters and latencies, and the bus's consumer lag."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._pending: tuple[threading.Event, dict[str, Any]] | None = None

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._dispatchers()
        except Exception as exc:
            log.warning("dispatcher metrics unavailable: %s", exc)
        try:
            yield from self._lag()
        except Exception as exc:
            log.warning("consumer lag unavailable: %s", exc)

    def _dispatchers(self) -> Iterator[Metric]:
        from breadthflow.services.triggers import dispatcher_status

        snapshots = dispatcher_status(self.ctx)
        if not snapshots:
            return
        up = GaugeMetricFamily(
            "breadthflow_dispatcher_up",
            "1 when the dispatcher reported lately",
            labels=["consumer"],
        )
        lag = GaugeMetricFamily(
            "breadthflow_dispatcher_consumer_lag",
            "Messages the dispatcher has not consumed yet",
            labels=["consumer"],
        )
        counters = {
            name: CounterMetricFamily(
                f"breadthflow_dispatcher_{name}", f"Dispatcher: {name}", labels=["consumer"]
            )
            for name in DISPATCHER_COUNTERS
        }
        latency = {
            kind: GaugeMetricFamily(
                f"breadthflow_dispatcher_{kind}_latency_seconds",
                f"Dispatcher {kind} latency quantiles over its recent window",
                labels=["consumer", "quantile"],
            )
            for kind in ("batch", "dispatch")
        }
        for snap in snapshots:
            consumer = str(snap.get("consumer", "?"))
            up.add_metric([consumer], 1.0 if snap.get("alive") else 0.0)
            if isinstance(snap.get("consumer_lag"), int | float):
                lag.add_metric([consumer], float(snap["consumer_lag"]))
            for name, family in counters.items():
                if isinstance(snap.get(name), int | float):
                    family.add_metric([consumer], float(snap[name]))
            for kind, family in latency.items():
                for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                    value = snap.get(f"{kind}_latency_{key}")
                    if isinstance(value, int | float):
                        family.add_metric([consumer, quantile], float(value))
        yield up
        yield lag
        yield from counters.values()
        yield from latency.values()

    def _lag(self) -> Iterator[Metric]:
        rows = self._lag_rows()
        if rows is None:
            return
        family = GaugeMetricFamily(
            "breadthflow_consumer_lag",
            "Unacknowledged messages per topic and consumer group",
            labels=["topic", "group"],
        )
        for row in rows:
            family.add_metric([row.topic, row.group], float(row.lag))
        yield family

    def _lag_rows(self) -> list[Any] | None:
        """The bus's lag, asked on a daemon thread: an unreachable broker can take a minute
        to give up, and a scrape must not wait for it (nor start a second query)."""
        from breadthflow.services.events import lag

        with self._lock:
            if self._pending is None:
                box: dict[str, Any] = {}
                done = threading.Event()

                def ask() -> None:
                    try:
                        box["rows"] = lag(self.ctx)
                    except Exception as exc:
                        box["error"] = exc
                    finally:
                        done.set()

                threading.Thread(target=ask, name="metrics-lag", daemon=True).start()
                self._pending = (done, box)
            done, box = self._pending
        if not done.wait(LAG_TIMEOUT):
            log.warning("consumer lag: the bus did not answer within %.0fs", LAG_TIMEOUT)
            return None
        with self._lock:
            self._pending = None
        if "error" in box:
            raise box["error"]
        return box["rows"]


class HttpMetrics:
    """ASGI middleware: time to the response's first byte, by method, route and status
    (for a server-sent event stream that is the time to open it)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "breadthflow_http_request_duration_seconds",
            "HTTP request latency (to the first byte of the response)",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        recorded = False

        async def timed_send(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self._observe(scope, message["status"], time.perf_counter() - began)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            if not recorded:
                self._observe(scope, 500, time.perf_counter() - began)
            raise

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        template = route_template(scope)
        self.latency.labels(scope.get("method", "?"), template, str(status)).observe(seconds)


def route_template(scope: Scope) -> str:
    """``/api/v1/runs/{run_id}`` for ``/api/v1/runs/run-1a2b``: the request path with each
    path parameter's value put back as its name; ``unmatched`` when no route matched."""
    if scope.get("route") is None:
        return "unmatched"
    params: dict[str, Any] = scope.get("path_params") or {}
    names = {str(value): name for name, value in params.items()}
    parts = str(scope.get("path", "")).split("/")
    return "/".join(f"{{{names[p]}}}" if p in names else p for p in parts)


def build_registry(ctx: AppContext) -> CollectorRegistry:
    """A registry of its own per app (tests build many apps in one process)."""
    # auto_describe off: registering must not run the collectors (they query the DB/bus).
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(ctx))
    registry.register(DispatcherCollector(ctx))
    return registry
