"""Stored alerts: fire (once per open episode), list, acknowledge.

An alert stays *open* until someone acknowledges it. :meth:`AlertRepository.fire` does
not store a second alert while an identical one is open — same pipeline, same rule, and
created at or after ``since`` (the start of the current episode: for ``run_failed`` the
end of the last good run, for ``late`` the last run's start). The check and the insert
happen under a lock (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
PostgreSQL), so two schedulers evaluating the same rule store it once.

>>> alerts = AlertRepository(db)                                          # doctest: +SKIP
>>> alerts.fire(pipeline_id, "late", "critical", "no run since 09:00")    # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select, text, update
from sqlalchemy.orm import Session

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store.db import Database
from breadthflow.store.models import AlertRow, PipelineRow, utcnow

SEVERITIES = ("info", "warning", "critical")
MAX_MESSAGE_CHARS = 4000

# Key of the PostgreSQL advisory lock that serialises firing ("bfalerts" in ASCII).
_FIRE_LOCK_KEY = 0x6266616C65727473


class StoredAlert(BaseModel):
    """One alert as ``breadthflow alerts`` and the API show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    pipeline_id: int | None
    pipeline: str | None
    run_id: str | None
    rule: str
    severity: str
    message: str
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class AlertRepository:
    """Alerts in the metadata DB."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def fire(
        self,
        pipeline_id: int | None,
        rule: str,
        severity: str,
        message: str,
        *,
        run_id: str | None = None,
        since: dt.datetime | None = None,
    ) -> StoredAlert | None:
        """Store an alert and return it — or ``None`` when an identical one is open
        (same pipeline and rule, unacknowledged, created at or after ``since``)."""
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r} — expected one of {SEVERITIES}")
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        open_query = select(AlertRow.id).where(
            AlertRow.rule == rule,
            AlertRow.acknowledged_at.is_(None),
            AlertRow.pipeline_id.is_(None)
            if pipeline_id is None
            else AlertRow.pipeline_id == pipeline_id,
        )
        if since is not None:
            open_query = open_query.where(AlertRow.created_at >= since)
        open_query = open_query.limit(1)
        # A plain read first: the scheduler asks every tick while a pipeline stays late,
        # and the write lock is only worth taking when there may be something to store.
        with self.db.session() as session:
            if session.scalar(open_query) is not None:
                return None
        with self.db.session() as session:
            self._lock(session)
            if session.scalar(open_query) is not None:
                return None
            row = AlertRow(
                pipeline_id=pipeline_id,
                run_id=run_id,
                rule=rule,
                severity=severity,
                message=message,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return self._alert(session, row.id)

    def get(self, alert_id: int) -> StoredAlert:
        with self.db.session() as session:
            return self._alert(session, alert_id)

    def list(
        self,
        pipeline_id: int | None = None,
        include_acknowledged: bool = False,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Newest first; open alerts only unless ``include_acknowledged``."""
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        query = _alerts_query()
        if pipeline_id is not None:
            query = query.where(AlertRow.pipeline_id == pipeline_id)
        if not include_acknowledged:
            query = query.where(AlertRow.acknowledged_at.is_(None))
        query = query.order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit)
        with self.db.session() as session:
            return [_stored(row, name) for row, name in session.execute(query).all()]

    def acknowledge(self, alert_id: int) -> tuple[StoredAlert, bool]:
        """Acknowledge one alert; returns it and whether it was open until now."""
        with self.db.session() as session:
            result = session.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.acknowledged_at.is_(None))
                .values(acknowledged_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
            return self._alert(session, alert_id), result.rowcount == 1

    def acknowledge_all(self, pipeline_id: int | None = None) -> int:
        """Acknowledge every open alert (of one pipeline); returns how many."""
        statement = update(AlertRow).where(AlertRow.acknowledged_at.is_(None))
        if pipeline_id is not None:
            statement = statement.where(AlertRow.pipeline_id == pipeline_id)
        with self.db.session() as session:
            result = session.execute(
                statement.values(acknowledged_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
            return result.rowcount

    # --- helpers ----------------------------------------------------------------------------

    def _lock(self, session: Session) -> None:
        connection = session.connection()
        if self.db.dialect == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FIRE_LOCK_KEY})

    @staticmethod
    def _alert(session: Session, alert_id: int) -> StoredAlert:
        found = session.execute(_alerts_query().where(AlertRow.id == alert_id)).first()
        if found is None:
            raise NotFoundError(f"no alert {alert_id} — `breadthflow alerts --all` lists them")
        return _stored(*found)


def _alerts_query() -> Select[tuple[AlertRow, str | None]]:
    return select(AlertRow, PipelineRow.name).outerjoin(
        PipelineRow, PipelineRow.id == AlertRow.pipeline_id
    )


def _stored(row: AlertRow, pipeline: str | None) -> StoredAlert:
    return StoredAlert(
        id=row.id,
        pipeline_id=row.pipeline_id,
        pipeline=pipeline,
        run_id=row.run_id,
        rule=row.rule,
        severity=row.severity,
        message=row.message,
        created_at=row.created_at,
        acknowledged_at=row.acknowledged_at,
    )
