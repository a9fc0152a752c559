"""Health of every configured backend, checked for real (not constants).

One implementation for ``GET /health`` and ``breadthflow status``:

- ``database``: ``select 1`` and the schema revision against the newest one;
- ``lake``: writes and deletes a probe object (the lake must be writable to be useful);
- ``bus``: by URL scheme — embedded (``sqlite``/``postgres``) rides on the database,
  ``redis://`` answers PING, ``nats://`` sends its ``INFO`` greeting, ``kafka://`` accepts a
  TCP connection on every listed broker;
- ``executor``: ``local`` runs in the runner; ``celery+redis://`` needs its broker to PING;
- ``runner``: a scheduler/worker process (this one, or the one ``pipeline start`` launched)
  is alive;
- ``workers``: queued runs are being picked up (none has waited longer than
  :data:`QUEUE_STALL_SECONDS`), with the counts of queued and running runs.

Each check is ``ok``, ``degraded`` or ``down`` with a one-line ``detail``. The report is
``down`` when the database, lake or bus is down, ``degraded`` when only the runner or the
workers are, ``ok`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy import func, select

from breadthflow import __version__
from breadthflow.core.config import mask_url
from breadthflow.core.errors import BreadthFlowError
from breadthflow.services.context import AppContext
from breadthflow.store.models import PipelineRunRow, utcnow

Status = Literal["ok", "degraded", "down"]
CONNECT_TIMEOUT = 2.0
#: A queued run older than this with no worker taking it means the workers are stuck.
QUEUE_STALL_SECONDS = 300.0
#: Checks whose failure makes the whole report ``down`` (the others only degrade it).
CRITICAL = ("database", "lake", "bus", "executor")


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    latency_ms: float
    info: dict[str, Any] = {}


class HealthReport(BaseModel):
    status: Status
    version: str
    time: dt.datetime
    checks: list[Check]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


@dataclass(frozen=True)
class InProcess:
    """What the serving process runs itself (``breadthflow serve``), for the runner and
    workers checks; None when nothing runs in-process."""

    scheduler: bool
    scheduler_alive: bool
    workers: int
    workers_alive: int
    dispatcher: bool = False
    dispatcher_alive: bool = False
    scan_kernels_loaded: bool = False  # warmed up at start: the first scan skips the loading


class _Down(Exception):
    """A check failed; the message is the one-line detail."""


# --- bus and executor probes, by URL scheme ------------------------------------------------


def _hosts(url: str, default_port: int) -> list[tuple[str, int]]:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    hosts = []
    for item in filter(None, netloc.split(",")):
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        hosts.append((host or item, int(port) if port.isdigit() else default_port))
    if not hosts:
        raise _Down(f"no host in '{mask_url(url)}'")
    return hosts


def _connect(host: str, port: int) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise _Down(f"cannot connect to {host}:{port} ({exc.strerror or exc})") from None


def _probe_redis(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(
        url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
    )
    try:
        client.ping()
        return {"server": "redis"}
    except redis.RedisError as exc:
        raise _Down(f"redis {mask_url(url)} did not answer PING ({exc})") from None
    finally:
        client.close()


def _probe_nats(url: str) -> dict[str, Any]:
    host, port = _hosts(url, 4222)[0]
    with _connect(host, port) as sock:
        try:
            greeting = sock.recv(4096)
        except OSError as exc:
            raise _Down(f"nats {host}:{port} sent no greeting ({exc})") from None
    if not greeting.startswith(b"INFO "):
        raise _Down(f"{host}:{port} is not a NATS server (greeting {greeting[:20]!r})")
    return {"server": "nats"}


def _probe_kafka(url: str) -> dict[str, Any]:
    brokers = _hosts(url, 9092)
    for host, port in brokers:
        _connect(host, port).close()
    return {"brokers": [f"{h}:{p}" for h, p in brokers]}


BUS_PROBES: dict[str, Callable[[str], dict[str, Any]]] = {
    "redis": _probe_redis,
    "rediss": _probe_redis,
    "nats": _probe_nats,
    "tls": _probe_nats,
    "kafka": _probe_kafka,
}
EMBEDDED_BUSES = ("sqlite", "postgres", "postgresql", "db", "")


# --- the checks ---------------------------------------------------------------------------


def _database(ctx: AppContext, _: InProcess | None) -> tuple[str, dict[str, Any]]:
    db = ctx.db
    db.check()
    current, head = db.current_revision(), db.head_revision()
    if current != head:
        raise _Down(f"schema at revision {current}, this version needs {head} — `db upgrade`")
    return f"{db.dialect} {db.safe_url}", {"dialect": db.dialect, "revision": current}


def _lake(ctx: AppContext, _: InProcess | None) -> tuple[str, dict[str, Any]]:
    ctx.lake.check()
    return f"writable {mask_url(ctx.settings.resolved_lake_url)}", {}


def _bus(ctx: AppContext, _: InProcess | None) -> tuple[str, dict[str, Any]]:
    url = ctx.settings.bus_url.strip()
    scheme = urlsplit(url).scheme if "://" in url else url.lower()
    if scheme in EMBEDDED_BUSES:
        ctx.db.check()
        return f"embedded in the metadata DB ({url or 'sqlite'})", {"kind": "embedded"}
    probe = BUS_PROBES.get(scheme)
    if probe is None:
        known = ", ".join(sorted({*EMBEDDED_BUSES, *BUS_PROBES} - {""}))
        raise _Down(f"unsupported bus URL '{mask_url(url)}' — expected one of {known}")
    info = probe(url.split("?", 1)[0])  # adapter options are not the server's business
    return f"reachable {mask_url(url)}", {"kind": scheme, **info}


def _executor(ctx: AppContext, _: InProcess | None) -> tuple[str, dict[str, Any]]:
    url = ctx.settings.executor_url.strip()
    if url in ("", "local"):
        return "local (runs execute in the runner's worker threads)", {"kind": "local"}
    scheme = urlsplit(url).scheme
    if scheme.startswith("celery+"):
        broker = url.removeprefix("celery+")
        info = BUS_PROBES.get(urlsplit(broker).scheme, _probe_kafka)(broker)
        return f"celery broker reachable {mask_url(broker)}", {"kind": "celery", **info}
    raise _Down(f"unsupported executor URL '{mask_url(url)}' — expected local or celery+redis://")


def _runner(ctx: AppContext, local: InProcess | None) -> tuple[str, dict[str, Any]]:
    from breadthflow.pipelines.runner import runner_state

    if local is not None and (local.scheduler or local.workers or local.dispatcher):
        info = {"in_process": True, **vars(local)}
        if local.scheduler and not local.scheduler_alive:
            raise _Down("the in-process scheduler has stopped")
        if local.workers and not local.workers_alive:
            raise _Down(f"all {local.workers} in-process workers have stopped")
        if local.dispatcher and not local.dispatcher_alive:
            raise _Down("the in-process trigger dispatcher has stopped")
        parts = []
        if local.scheduler:
            parts.append("scheduler")
        if local.workers:
            parts.append(f"{local.workers_alive}/{local.workers} workers")
        if local.dispatcher:
            parts.append("dispatcher")
        return "in this process: " + " + ".join(parts), info
    state = runner_state(ctx)
    if not state.alive:
        raise _Down(
            "no runner is running — `breadthflow serve` or `breadthflow pipeline start` runs one"
        )
    return f"runner pid {state.pid}", {"in_process": False, "pid": state.pid}


def _workers(ctx: AppContext, _: InProcess | None) -> tuple[str, dict[str, Any]]:
    with ctx.db.session() as session:
        counts = dict(
            session.execute(
                select(PipelineRunRow.status, func.count())
                .where(PipelineRunRow.status.in_(("queued", "running")))
                .group_by(PipelineRunRow.status)
            ).all()
        )
        oldest = session.scalar(
            select(func.min(PipelineRunRow.queued_at)).where(PipelineRunRow.status == "queued")
        )
        workers = session.scalars(
            select(PipelineRunRow.worker)
            .where(PipelineRunRow.status == "running", PipelineRunRow.worker.is_not(None))
            .distinct()
        ).all()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.UTC)
    waited = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    info = {
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "oldest_queued_seconds": round(waited, 1),
        "busy_workers": sorted(w for w in workers if w),
    }
    if waited > QUEUE_STALL_SECONDS:
        raise _Down(
            f"{info['queued']} run(s) queued, the oldest for {waited:.0f}s — no worker is "
            "taking them"
        )
    return f"{info['running']} running, {info['queued']} queued", info


def _dispatcher(ctx: AppContext, local: InProcess | None) -> tuple[str, dict[str, Any]]:
    """The trigger dispatchers that reported recently (in this process or others), with
    their counters summed; down only when signal-triggered pipelines wait for one."""
    from breadthflow.services.triggers import dispatcher_status
    from breadthflow.store.pipelines import PipelineRepository

    alive = [d for d in dispatcher_status(ctx) if d.get("alive")]
    if not alive:
        waiting = [
            p.name
            for p in PipelineRepository(ctx.db).list(active_only=True)
            if p.trigger_mode == "signal"
        ]
        if waiting:
            raise _Down(
                f"no trigger dispatcher is running, and {len(waiting)} signal-triggered "
                f"pipeline(s) wait for one ({', '.join(waiting[:3])}) — `breadthflow serve` "
                "or `breadthflow dispatcher` runs one"
            )
        return "not running (no signal-triggered pipelines need one)", {"running": 0}
    summed = ("received", "signals", "matched", "enqueued", "skipped", "invalid", "batches",
              "db_queries", "bus_errors")  # fmt: skip
    info: dict[str, Any] = {"running": len(alive)}
    info.update({key: sum(int(d.get(key) or 0) for d in alive) for key in summed})
    lags = [d["consumer_lag"] for d in alive if d.get("consumer_lag") is not None]
    info["consumer_lag"] = max(lags) if lags else None
    for key in ("batch_latency_p50", "batch_latency_p99", "dispatch_latency_p50",
                "dispatch_latency_p99"):  # fmt: skip
        values = [d[key] for d in alive if d.get(key) is not None]
        info[key] = max(values) if values else None
    by_signal: dict[str, dict[str, int]] = {}
    for d in alive:
        for word, counts in (d.get("by_signal") or {}).items():
            mine = by_signal.setdefault(word, {"received": 0, "enqueued": 0})
            mine["received"] += counts.get("received", 0)
            mine["enqueued"] += counts.get("enqueued", 0)
    info["by_signal"] = by_signal
    names = ", ".join(str(d["consumer"]) for d in alive)
    return f"{len(alive)} running ({names}), group {alive[0].get('group')}", info


CHECKS: dict[str, Callable[[AppContext, InProcess | None], tuple[str, dict[str, Any]]]] = {
    "database": _database,
    "lake": _lake,
    "bus": _bus,
    "executor": _executor,
    "runner": _runner,
    "workers": _workers,
    "dispatcher": _dispatcher,
}


def _run(name: str, ctx: AppContext, local: InProcess | None) -> Check:
    began = time.perf_counter()
    status: Status = "ok"
    info: dict[str, Any] = {}
    try:
        detail, info = CHECKS[name](ctx, local)
    except (_Down, BreadthFlowError) as exc:
        status, detail = "down", str(exc)
    except Exception as exc:  # a probe's own failure is still an answer, not a 500
        status, detail = "down", f"{type(exc).__name__}: {exc}".splitlines()[0]
    if name not in CRITICAL and status == "down":
        status = "degraded"  # the API still answers; runs just do not progress
    latency = round((time.perf_counter() - began) * 1000, 2)
    return Check(name=name, status=status, detail=detail, latency_ms=latency, info=info)


def check_health(ctx: AppContext, local: InProcess | None = None) -> HealthReport:
    """Run every check (each bounded by a short timeout) and summarise.

    >>> report = check_health(AppContext())                     # doctest: +SKIP
    >>> report.status, [c.name for c in report.checks]           # doctest: +SKIP
    ('ok', ['database', 'lake', 'bus', 'executor', 'runner', 'workers', 'dispatcher'])
    """
    checks = [_run(name, ctx, local) for name in CHECKS]
    if any(c.status == "down" and c.name in CRITICAL for c in checks):
        overall: Status = "down"
    elif any(c.status != "ok" for c in checks):
        overall = "degraded"
    else:
        overall = "ok"
    return HealthReport(status=overall, version=__version__, time=utcnow(), checks=checks)
