"""Enqueue the runs a batch of trading signals triggers: one check, one transaction.

The dispatcher hands over ``pipeline id → payload`` for a whole batch. One read finds
which of those pipelines already have a queued or running run (skipped). Only when some
are idle, a write transaction under the same lock that run claims take (so two
dispatchers cannot both see a pipeline idle and both queue it) re-reads them with their
definitions and gives each still-idle one a ``signal`` run carrying the triggering signal
as ``trigger_payload``. So a batch costs one query when everything it matches is busy
(the usual case under a flood of signals) and two when it starts runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import PipelineRow, PipelineRunRow, utcnow
from breadthflow.store.pipelines import DEFINITION_FIELDS
from breadthflow.store.runs import OPEN_STATUSES, RunRepository, new_run_id, record_run_event


@dataclass
class EnqueueOutcome:
    """What one batch did: runs queued (pipeline id → run id) and pipelines skipped."""

    enqueued: dict[int, str] = field(default_factory=dict)
    #: Already queued or running (the idempotency check).
    busy: set[int] = field(default_factory=set)
    #: Deleted or switched off since the index was built.
    gone: set[int] = field(default_factory=set)
    #: Round trips that read the DB (the busy check is one; the snapshot read is the other).
    queries: int = 0


def enqueue_triggered(
    db: Database, candidates: Mapping[int, Mapping[str, Any]], trigger: str = "signal"
) -> EnqueueOutcome:
    """Queue one run per candidate pipeline that has no open run; skip the others."""
    outcome = EnqueueOutcome()
    if not candidates:
        return outcome
    ids = sorted(candidates)
    # A plain read first: under a flood of signals nearly every matched pipeline is already
    # queued or running, and then the batch needs nothing else (no write lock, no commit).
    with db.session() as session:
        outcome.busy = _busy(session, ids)
    outcome.queries += 1
    wanted = [pid for pid in ids if pid not in outcome.busy]
    if not wanted:
        return outcome
    with db.session() as session:
        # Under the claim lock, so two dispatchers cannot both queue the same pipeline:
        # whatever became busy since the read above is skipped too.
        RunRepository(db).lock_claims(session)
        rows = session.execute(
            select(PipelineRow, PipelineRunRow.run_id)
            .outerjoin(
                PipelineRunRow,
                (PipelineRunRow.pipeline_id == PipelineRow.id)
                & PipelineRunRow.status.in_(OPEN_STATUSES),
            )
            .where(PipelineRow.id.in_(wanted), PipelineRow.is_active)
        ).all()
        outcome.queries += 1
        found: dict[int, PipelineRow] = {}
        for row, open_run in rows:
            if open_run is not None:
                outcome.busy.add(row.id)
            else:
                found[row.id] = row
        outcome.gone = set(wanted) - set(found) - outcome.busy
        now = utcnow()
        for pid in wanted:
            row = found.get(pid)
            if row is None:
                continue
            run_id = new_run_id()
            session.add(
                PipelineRunRow(
                    run_id=run_id,
                    pipeline_id=pid,
                    trigger=trigger,
                    trigger_payload=json_safe(dict(candidates[pid])),
                    status="queued",
                    scheduled_for=None,
                    queued_at=now,
                    config_snapshot=json_safe(
                        {name: getattr(row, name) for name in DEFINITION_FIELDS}
                    ),
                    attempt=1,
                )
            )
            outcome.enqueued[pid] = run_id
        session.flush()
        for pid, run_id in outcome.enqueued.items():
            # The same pipeline-events a single enqueue records, in this transaction.
            record_run_event(session, run_id, pid, "queued", trigger, 1)
    return outcome


#: Above this many pipelines, reading every open run beats a long ``IN (…)`` list (whose
#: statement SQLAlchemy compiles afresh for each length).
_IN_LIST_LIMIT = 200


def _busy(session: Session, ids: list[int]) -> set[int]:
    query = select(PipelineRunRow.pipeline_id).where(PipelineRunRow.status.in_(OPEN_STATUSES))
    if len(ids) <= _IN_LIST_LIMIT:
        query = query.where(PipelineRunRow.pipeline_id.in_(ids))
    # Core rows, not ORM entities: this runs once per batch and may return many rows.
    found = set(session.connection().execute(query).scalars().all())
    return found if len(ids) <= _IN_LIST_LIMIT else found.intersection(ids)
