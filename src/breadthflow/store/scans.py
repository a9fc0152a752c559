"""The scan log: one row per scan, with its counts; the matches themselves are in the lake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import ScanRow, utcnow


class ScanSummary(BaseModel):
    """One stored scan, as ``scan list`` / ``scan show`` and the API show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    formula: str
    universe: str
    symbols: int
    timeframe: str
    start: dt.date
    end: dt.date
    parameters: dict[str, Any]
    status: str
    matches: int
    symbols_matched: int
    errors: int
    error: str | None
    artifacts: str | None
    pipeline_run_id: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float | None


class ScanRepository:
    """Record scans and read them back (newest first)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self,
        formula: str,
        universe: str,
        symbols: int,
        start: dt.date,
        end: dt.date,
        parameters: Mapping[str, Any],
        timeframe: str = "1d",
        pipeline_run_id: str | None = None,
    ) -> int:
        """Record a scan that is beginning; committed before returning its id."""
        row = ScanRow(
            formula=formula,
            universe=universe,
            symbols=symbols,
            timeframe=timeframe,
            start_date=start,
            end_date=end,
            parameters=json_safe(dict(parameters)),
            status="running",
            matches=0,
            symbols_matched=0,
            errors=0,
            pipeline_run_id=pipeline_run_id or "",
            created_at=utcnow(),
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def finish(
        self,
        scan_id: int,
        matches: int,
        symbols_matched: int,
        errors: int,
        artifacts: str | None,
    ) -> str:
        """Record the outcome: ``succeeded``, or ``partial`` when some symbols failed."""
        status = "partial" if errors else "succeeded"
        with self.db.session() as session:
            row = self._row(session, scan_id)
            now = utcnow()
            row.matches, row.symbols_matched, row.errors = matches, symbols_matched, errors
            row.artifacts, row.status, row.finished_at = artifacts, status, now
            row.seconds = (now - row.created_at).total_seconds()
        return status

    def fail(self, scan_id: int, error: str) -> None:
        with self.db.session() as session:
            row = self._row(session, scan_id)
            if row.status != "running":
                return
            now = utcnow()
            row.status, row.error, row.finished_at = "failed", error, now
            row.seconds = (now - row.created_at).total_seconds()

    def get(self, scan_id: int) -> ScanSummary:
        with self.db.session() as session:
            return _summary(self._row(session, scan_id))

    def list(self, limit: int = 20, offset: int = 0) -> list[ScanSummary]:
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        if offset < 0:
            raise InvalidInputError(f"invalid offset {offset} — expected 0 or more")
        query = select(ScanRow).order_by(ScanRow.created_at.desc(), ScanRow.id.desc())
        with self.db.session() as session:
            return [_summary(r) for r in session.scalars(query.limit(limit).offset(offset))]

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(ScanRow)) or 0)

    @staticmethod
    def _row(session: Session, scan_id: int) -> ScanRow:
        row = session.get(ScanRow, scan_id)
        if row is None:
            raise NotFoundError(f"no scan with id {scan_id} — `breadthflow scan list` shows them")
        return row


def _summary(row: ScanRow) -> ScanSummary:
    return ScanSummary(
        id=row.id,
        formula=row.formula,
        universe=row.universe,
        symbols=row.symbols,
        timeframe=row.timeframe,
        start=row.start_date,
        end=row.end_date,
        parameters=row.parameters or {},
        status=row.status,
        matches=row.matches,
        symbols_matched=row.symbols_matched,
        errors=row.errors,
        error=row.error,
        artifacts=row.artifacts,
        pipeline_run_id=row.pipeline_run_id or None,
        created_at=row.created_at,
        finished_at=row.finished_at,
        seconds=row.seconds,
    )
