"""Live updates for the dashboard and API clients, by polling the metadata DB cheaply.

:func:`open_cursor` remembers where a stream starts; :func:`poll` returns what happened
since, advancing the cursor. Every query is indexed and bounded:

- ``run``: a run appeared or changed status (or attempt) — the open runs, the runs the
  cursor saw open last time, and the runs whose queue/start/end time is recent are
  compared with what the cursor saw;
- ``signals``: new signal rows (id cursor), summarised per poll (count by type and the
  newest few) because a batch can insert thousands at once;
- ``alert``: new alerts (id cursor);
- ``log``: with a ``run_id``, that run's log lines (id cursor, from the first line).

The event bus (``services/events.py``) can feed these later; the shapes stay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select

from breadthflow.core.errors import InvalidInputError
from breadthflow.services.context import AppContext
from breadthflow.store._json import json_safe
from breadthflow.store.models import (
    AlertRow,
    PipelineRow,
    PipelineRunRow,
    RunLogRow,
    SignalRow,
    utcnow,
)
from breadthflow.store.runs import OPEN_STATUSES

EVENT_TYPES = ("run", "signals", "alert", "log")
#: Look back this far past the last poll for changed runs (commit delays, clock skew).
SLACK = dt.timedelta(seconds=5)
MAX_LOG_LINES = 500
MAX_ALERTS = 100
LATEST_SIGNALS = 20


@dataclass
class LiveEvent:
    type: str
    data: dict[str, Any]


@dataclass
class Cursor:
    types: frozenset[str]
    run_id: str | None
    since: dt.datetime
    signal_id: int = 0
    alert_id: int = 0
    log_id: int = 0
    runs: dict[str, tuple[str, int]] = field(default_factory=dict)


def parse_types(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset(EVENT_TYPES)
    chosen = {t.strip() for t in text.split(",") if t.strip()}
    unknown = chosen - set(EVENT_TYPES)
    if unknown:
        raise InvalidInputError(
            f"unknown event type '{sorted(unknown)[0]}' — expected some of {', '.join(EVENT_TYPES)}"
        )
    return frozenset(chosen)


def open_cursor(ctx: AppContext, run_id: str | None = None, types: str | None = None) -> Cursor:
    """A cursor at "now": later polls return what happens from here on (and, for
    ``run_id``, the run's log lines from the first one)."""
    chosen = parse_types(types)
    if run_id is not None:
        from breadthflow.store.runs import RunRepository

        RunRepository(ctx.db).get(run_id)  # NotFoundError for an unknown run
    cursor = Cursor(types=chosen, run_id=run_id, since=utcnow() - SLACK)
    with ctx.db.session() as session:
        cursor.signal_id = int(session.scalar(select(func.max(SignalRow.id))) or 0)
        cursor.alert_id = int(session.scalar(select(func.max(AlertRow.id))) or 0)
        for row in session.execute(_runs_query(cursor)).all():
            cursor.runs[row.run_id] = (row.status, row.attempt)
    return cursor


def _runs_query(cursor: Cursor) -> Any:
    recent = or_(
        PipelineRunRow.status.in_(OPEN_STATUSES),
        PipelineRunRow.queued_at >= cursor.since,
        PipelineRunRow.start_time >= cursor.since,
        PipelineRunRow.end_time >= cursor.since,
    )
    # Runs seen open last time are looked up by id, so their end is never missed.
    tracked = [run for run, (status, _) in cursor.runs.items() if status in OPEN_STATUSES]
    if tracked:
        recent = or_(recent, PipelineRunRow.run_id.in_(tracked[:500]))
    if cursor.run_id is not None:
        recent = PipelineRunRow.run_id == cursor.run_id
    return (
        select(
            PipelineRunRow.run_id,
            PipelineRunRow.pipeline_id,
            PipelineRow.name.label("pipeline"),
            PipelineRunRow.trigger,
            PipelineRunRow.status,
            PipelineRunRow.attempt,
            PipelineRunRow.queued_at,
            PipelineRunRow.start_time,
            PipelineRunRow.end_time,
            PipelineRunRow.duration,
            PipelineRunRow.symbols_processed,
            PipelineRunRow.signals_generated,
            PipelineRunRow.error_count,
            PipelineRunRow.error,
        )
        .outerjoin(PipelineRow, PipelineRow.id == PipelineRunRow.pipeline_id)
        .where(recent)
        .order_by(PipelineRunRow.queued_at)
        .limit(1000)
    )


def poll(ctx: AppContext, cursor: Cursor) -> list[LiveEvent]:
    """What happened since the last poll (in order: runs, signals, alerts, log lines)."""
    found: list[LiveEvent] = []
    started = utcnow()
    with ctx.db.session() as session:
        if "run" in cursor.types:
            seen: dict[str, tuple[str, int]] = {}
            for row in session.execute(_runs_query(cursor)).all():
                state = (row.status, row.attempt)
                seen[row.run_id] = state
                if cursor.runs.get(row.run_id) != state:
                    found.append(LiveEvent("run", json_safe(dict(row._mapping))))
            # A finished run drops out once its times are older than the window.
            cursor.runs = seen
        if "signals" in cursor.types:
            newest = int(session.scalar(select(func.max(SignalRow.id))) or 0)
            if newest > cursor.signal_id:
                new = (SignalRow.id > cursor.signal_id, SignalRow.id <= newest)
                counts = dict(
                    session.execute(
                        select(SignalRow.signal_type, func.count())
                        .where(*new)
                        .group_by(SignalRow.signal_type)
                    ).all()
                )
                latest = session.scalars(
                    select(SignalRow)
                    .where(*new)
                    .order_by(SignalRow.id.desc())
                    .limit(LATEST_SIGNALS)
                ).all()
                summary = {
                    "count": sum(counts.values()),
                    "by_type": counts,
                    "last_id": newest,
                    "latest": [_signal(r) for r in latest],
                }
                found.append(LiveEvent("signals", json_safe(summary)))
                cursor.signal_id = newest
        if "alert" in cursor.types:
            for alert in session.scalars(
                select(AlertRow)
                .where(AlertRow.id > cursor.alert_id)
                .order_by(AlertRow.id)
                .limit(MAX_ALERTS)
            ):
                found.append(LiveEvent("alert", json_safe(_alert(alert))))
                cursor.alert_id = alert.id
        if "log" in cursor.types and cursor.run_id is not None:
            for line in session.scalars(
                select(RunLogRow)
                .where(RunLogRow.run_id == cursor.run_id, RunLogRow.id > cursor.log_id)
                .order_by(RunLogRow.id)
                .limit(MAX_LOG_LINES)
            ):
                found.append(LiveEvent("log", json_safe(_log(line))))
                cursor.log_id = line.id
    cursor.since = started - SLACK
    return found


def _signal(row: SignalRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "symbol": row.symbol,
        "date": row.date,
        "strategy": row.strategy,
        "signal_type": row.signal_type,
        "confidence": row.confidence,
        "pipeline_run_id": row.pipeline_run_id or None,
    }


def _alert(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "pipeline_id": row.pipeline_id,
        "run_id": row.run_id,
        "rule": row.rule,
        "severity": row.severity,
        "message": row.message,
        "created_at": row.created_at,
        "acknowledged_at": row.acknowledged_at,
    }


def _log(row: RunLogRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "time": row.time,
        "level": row.level,
        "step": row.step,
        "message": row.message,
    }
