"""Stored pipeline definitions: create, read, update, delete, enable/disable.

Definitions are validated by :class:`~breadthflow.pipelines.definitions.PipelineDefinition`
before they get here; this module only stores and returns them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from breadthflow.bus.events import PIPELINE_EVENTS, Event
from breadthflow.bus.outbox import record as record_events
from breadthflow.core.errors import InvalidInputError, NotFoundError, unknown_name
from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import PipelineRow, utcnow

DEFINITION_FIELDS = (
    "name", "kind", "mode", "symbols", "universe", "provider", "schedule", "timezone",
    "trigger_mode", "scanner_tickers", "parameters", "retry_policy", "error_policy",
    "notifications", "is_active",
)  # fmt: skip


class StoredPipeline(BaseModel):
    """A stored definition plus its id and the scheduler's next due time."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    kind: str
    mode: str
    symbols: list[str]
    universe: str | None
    provider: str
    schedule: str | None
    timezone: str
    trigger_mode: str
    scanner_tickers: list[str]
    parameters: dict[str, Any]
    retry_policy: dict[str, Any]
    error_policy: str
    notifications: dict[str, Any]
    is_active: bool
    next_run_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    def definition(self) -> dict[str, Any]:
        """The definition fields only (what ``pipeline update`` starts from)."""
        return {name: getattr(self, name) for name in DEFINITION_FIELDS}


class PipelineRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, definition: dict[str, Any], next_run_at: dt.datetime | None) -> int:
        now = utcnow()
        row = PipelineRow(
            **{k: json_safe(v) for k, v in definition.items()},
            next_run_at=next_run_at,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                _record_change(session, "created", row)
                return row.id
        except IntegrityError:
            raise InvalidInputError(
                f"a pipeline named '{definition['name']}' already exists — choose another "
                "name or `pipeline update` it"
            ) from None

    def update(
        self, name: str, definition: dict[str, Any], next_run_at: dt.datetime | None
    ) -> None:
        with self.db.session() as session:
            row = self._row(session, name)
            for key, value in definition.items():
                setattr(row, key, json_safe(value))
            row.next_run_at = next_run_at
            row.updated_at = utcnow()
            _record_change(session, "updated", row)

    def set_active(self, name: str, active: bool, next_run_at: dt.datetime | None) -> None:
        with self.db.session() as session:
            row = self._row(session, name)
            row.is_active = active
            row.next_run_at = next_run_at if active else None
            row.updated_at = utcnow()
            _record_change(session, "enabled" if active else "disabled", row)

    def delete(self, name: str) -> None:
        with self.db.session() as session:
            row = self._row(session, name)
            _record_change(session, "deleted", row)
            session.delete(row)

    def get(self, name: str) -> StoredPipeline:
        with self.db.session() as session:
            return _stored(self._row(session, name))

    def get_by_id(self, pipeline_id: int) -> StoredPipeline:
        with self.db.session() as session:
            row = session.get(PipelineRow, pipeline_id)
            if row is None:
                raise NotFoundError(f"no pipeline with id {pipeline_id}")
            return _stored(row)

    def list(self, active_only: bool = False) -> list[StoredPipeline]:
        query = select(PipelineRow).order_by(PipelineRow.name)
        if active_only:
            query = query.where(PipelineRow.is_active.is_(True))
        with self.db.session() as session:
            return [_stored(r) for r in session.scalars(query)]

    @staticmethod
    def _row(session: Session, name: str) -> PipelineRow:
        row = session.scalars(select(PipelineRow).where(PipelineRow.name == name)).first()
        if row is None:
            names = session.scalars(select(PipelineRow.name)).all()
            raise unknown_name("pipeline", name, names)
        return row


def _record_change(session: Session, action: str, row: PipelineRow) -> None:
    """A ``pipeline.<action>`` event on ``pipeline-events``, in the change's transaction
    (the trigger dispatcher rebuilds its ticker index when it sees one)."""
    event = Event(
        type=f"pipeline.{action}",
        source="breadthflow.pipelines",
        data={
            "pipeline_id": row.id,
            "name": row.name,
            "trigger_mode": row.trigger_mode,
            "is_active": row.is_active,
        },
    )
    record_events(session, PIPELINE_EVENTS, [event])


def _stored(row: PipelineRow) -> StoredPipeline:
    return StoredPipeline(
        id=row.id,
        **{name: getattr(row, name) for name in DEFINITION_FIELDS},
        next_run_at=row.next_run_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
