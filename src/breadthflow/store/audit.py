"""The command audit log: one row per ``/execute`` call, written before the command runs
(status ``running``) and completed after, so a crash mid-command still leaves a trace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import COMMAND_STATUSES, CommandAuditRow, utcnow


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    time: dt.datetime
    actor: str
    token_id: int | None
    client: str | None
    command: str
    parameters: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    error: str | None
    finished_at: dt.datetime | None
    duration: float | None


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self,
        actor: str,
        command: str,
        parameters: Mapping[str, Any],
        token_id: int | None = None,
        client: str | None = None,
        status: str = "running",
        error: str | None = None,
    ) -> int:
        """Record a call; ``status='rejected'`` (with ``error``) records a refused one."""
        now = utcnow()
        row = CommandAuditRow(
            time=now,
            actor=actor[:64],
            token_id=token_id,
            client=client[:128] if client else None,
            command=command[:64],
            parameters=json_safe(dict(parameters)),
            status=status,
            error=error,
            finished_at=None if status == "running" else now,
            duration=None if status == "running" else 0.0,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def finish(
        self,
        entry_id: int,
        status: str,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        if status not in COMMAND_STATUSES or status == "running":
            raise ValueError(f"a command cannot finish as {status!r}")
        with self.db.session() as session:
            row = session.get(CommandAuditRow, entry_id)
            if row is None:
                raise NotFoundError(f"no audit entry {entry_id}")
            now = utcnow()
            row.status, row.error, row.finished_at = status, error, now
            row.result = json_safe(dict(result)) if result is not None else None
            row.duration = (now - row.time).total_seconds()

    def get(self, entry_id: int) -> AuditEntry:
        with self.db.session() as session:
            row = session.get(CommandAuditRow, entry_id)
            if row is None:
                raise NotFoundError(f"no audit entry {entry_id}")
            return _entry(row)

    def list(
        self, limit: int = 50, offset: int = 0, command: str | None = None
    ) -> tuple[list[AuditEntry], int]:
        """Newest first, and how many there are in all."""
        if limit < 1 or offset < 0:
            raise InvalidInputError(f"invalid limit {limit} / offset {offset}")
        query = select(CommandAuditRow)
        counting = select(func.count()).select_from(CommandAuditRow)
        if command:
            query = query.where(CommandAuditRow.command == command)
            counting = counting.where(CommandAuditRow.command == command)
        query = query.order_by(CommandAuditRow.id.desc()).limit(limit).offset(offset)
        with self.db.session() as session:
            rows = [_entry(r) for r in session.scalars(query)]
            return rows, int(session.scalar(counting) or 0)


def _entry(row: CommandAuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        time=row.time,
        actor=row.actor,
        token_id=row.token_id,
        client=row.client,
        command=row.command,
        parameters=row.parameters or {},
        status=row.status,
        result=row.result,
        error=row.error,
        finished_at=row.finished_at,
        duration=row.duration,
    )
