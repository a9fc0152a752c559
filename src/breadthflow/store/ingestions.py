"""The ingestion log: one row per ``data fetch``, with its data issues and failed symbols.

The row is written when the fetch starts (status ``running``) and committed at once, so
a fetch that is killed leaves a visible trace; :meth:`IngestionRepository.finish`
records the outcome, issues and failures in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from breadthflow.bus.events import MARKET_DATA, Event
from breadthflow.bus.outbox import record as record_events
from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import (
    DataIssue,
    FetchReport,
    IssueKind,
    SymbolFailure,
    Timeframe,
)
from breadthflow.store.db import Database
from breadthflow.store.models import Ingestion, IngestionFailure, IngestionIssue, utcnow


class IngestionSummary(BaseModel):
    """One ingestion as shown by ``data status`` and the API."""

    model_config = ConfigDict(frozen=True)

    id: int
    provider: str
    timeframe: str
    start: dt.date
    end: dt.date
    status: str
    symbols_requested: int
    symbols_stored: int
    symbols_failed: int
    rows_received: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    issues: dict[str, int] = Field(
        default_factory=dict, description="rows affected per issue kind, e.g. {'row_rejected': 3}"
    )
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float | None
    error: str | None


def ingestion_status(report: FetchReport) -> str:
    """``succeeded`` (no failures), ``partial`` (some symbols failed, some stored) or
    ``failed`` (symbols failed and none was stored)."""
    if not report.failures:
        return "succeeded"
    return "partial" if report.symbols_stored > 0 else "failed"


class IngestionRepository:
    """Record fetches and read them back.

    >>> repo = IngestionRepository(db)                                      # doctest: +SKIP
    >>> ingestion_id = repo.start("sample", "1d", start, end, 30)           # doctest: +SKIP
    >>> repo.finish(ingestion_id, report)                                   # doctest: +SKIP
    >>> repo.recent(1)[0].status                                            # doctest: +SKIP
    'succeeded'
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- writing ----------------------------------------------------------------------------

    def start(
        self,
        provider: str,
        timeframe: str | Timeframe,
        start: dt.date,
        end: dt.date,
        symbols_requested: int,
    ) -> int:
        """Record a fetch that is beginning (status ``running``); return its id.

        Committed before returning, so the row is visible even if the process dies.
        """
        row = Ingestion(
            provider=provider,
            timeframe=Timeframe.parse(timeframe).value,
            start_date=start,
            end_date=end,
            symbols_requested=symbols_requested,
            symbols_stored=0,
            symbols_failed=0,
            rows_received=0,
            rows_inserted=0,
            rows_updated=0,
            rows_unchanged=0,
            status="running",
            started_at=utcnow(),
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def finish(self, ingestion_id: int, report: FetchReport) -> str:
        """Record the outcome of a fetch: counts, status, issues and failures.

        Everything is written in one transaction: if any part fails, the ingestion stays
        as it was (``running``). Finishing twice replaces the earlier outcome. Returns
        the status written.
        """
        status = ingestion_status(report)
        error = None
        if status == "failed":
            first = report.failures[0]
            error = f"no symbol stored, {len(report.failures)} failed — first: {first.symbol}: "
            error += first.error
        with self.db.session() as session:
            row = self._row(session, ingestion_id)
            row.symbols_stored = report.symbols_stored
            row.symbols_failed = len(report.failures)
            row.rows_received = report.rows_received
            row.rows_inserted = report.rows_inserted
            row.rows_updated = report.rows_updated
            row.rows_unchanged = report.rows_unchanged
            row.status = status
            row.finished_at = utcnow()
            row.seconds = report.seconds
            row.error = error
            session.execute(delete(IngestionIssue).where(IngestionIssue.ingestion_id == row.id))
            session.execute(delete(IngestionFailure).where(IngestionFailure.ingestion_id == row.id))
            # Bulk inserts (executemany): a fetch of a large universe can report
            # thousands of issues.
            if report.issues:
                session.execute(
                    insert(IngestionIssue), [_issue_row(row.id, i) for i in report.issues]
                )
            if report.failures:
                session.execute(
                    insert(IngestionFailure),
                    [
                        {"ingestion_id": row.id, "symbol": f.symbol, "error": f.error}
                        for f in report.failures
                    ],
                )
            if report.rows_inserted or report.rows_updated:
                # New bars: a market-data event, committed with the ingestion's record.
                record_events(session, MARKET_DATA, [_ingested_event(row.id, report, status)])
        return status

    def fail(self, ingestion_id: int, error: str) -> None:
        """Mark a running ingestion as failed with ``error`` (one line: why it stopped).

        An ingestion that already finished keeps its recorded outcome: a late error
        (say Ctrl-C just after :meth:`finish`) must not rewrite a true result.
        """
        with self.db.session() as session:
            row = self._row(session, ingestion_id)
            if row.status != "running":
                return
            now = utcnow()
            row.status = "failed"
            row.error = error
            row.finished_at = now
            row.seconds = (now - row.started_at).total_seconds()

    # --- reading ----------------------------------------------------------------------------

    def get(self, ingestion_id: int) -> IngestionSummary:
        """One ingestion; :class:`NotFoundError` when the id is unknown."""
        with self.db.session() as session:
            row = self._row(session, ingestion_id)
            counts = _issue_counts(session, [row.id])
        return _summary(row, counts.get(row.id, {}))

    def recent(self, limit: int = 10) -> list[IngestionSummary]:
        """The latest ``limit`` ingestions, newest first."""
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        with self.db.session() as session:
            rows = session.scalars(
                select(Ingestion)
                .order_by(Ingestion.started_at.desc(), Ingestion.id.desc())
                .limit(limit)
            ).all()
            counts = _issue_counts(session, [r.id for r in rows])
        return [_summary(r, counts.get(r.id, {})) for r in rows]

    def issues(self, ingestion_id: int, kind: str | IssueKind | None = None) -> list[DataIssue]:
        """The data issues of an ingestion, in the order they were reported.

        ``kind`` keeps only one kind (``row_rejected``, ``missing_session``, …).
        """
        query = select(IngestionIssue).where(IngestionIssue.ingestion_id == ingestion_id)
        if kind is not None:
            query = query.where(IngestionIssue.kind == _issue_kind(kind).value)
        with self.db.session() as session:
            self._row(session, ingestion_id)
            rows = session.scalars(query.order_by(IngestionIssue.id)).all()
        return [
            DataIssue(
                symbol=r.symbol, date=r.date, kind=IssueKind(r.kind), detail=r.detail, rows=r.rows
            )
            for r in rows
        ]

    def failures(self, ingestion_id: int) -> list[SymbolFailure]:
        """The symbols that failed in an ingestion, in the order they were reported."""
        with self.db.session() as session:
            self._row(session, ingestion_id)
            rows = session.scalars(
                select(IngestionFailure)
                .where(IngestionFailure.ingestion_id == ingestion_id)
                .order_by(IngestionFailure.id)
            ).all()
        return [SymbolFailure(symbol=r.symbol, error=r.error) for r in rows]

    @staticmethod
    def _row(session: Session, ingestion_id: int) -> Ingestion:
        row = session.get(Ingestion, ingestion_id)
        if row is None:
            raise NotFoundError(f"no ingestion with id {ingestion_id}")
        return row


def _issue_kind(kind: str | IssueKind) -> IssueKind:
    try:
        return IssueKind(str(kind).strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in IssueKind)
        raise InvalidInputError(f"unknown issue kind '{kind}' — expected one of {known}") from None


def _issue_row(ingestion_id: int, issue: DataIssue) -> dict[str, Any]:
    return {
        "ingestion_id": ingestion_id,
        "symbol": issue.symbol,
        "date": issue.date,
        "kind": issue.kind.value if isinstance(issue.kind, IssueKind) else issue.kind,
        "detail": issue.detail,
        "rows": issue.rows,
    }


def _issue_counts(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Rows affected per issue kind, for several ingestions in one query."""
    if not ids:
        return {}
    query = (
        select(IngestionIssue.ingestion_id, IngestionIssue.kind, func.sum(IngestionIssue.rows))
        .where(IngestionIssue.ingestion_id.in_(ids))
        .group_by(IngestionIssue.ingestion_id, IngestionIssue.kind)
        .order_by(IngestionIssue.ingestion_id, IngestionIssue.kind)
    )
    counts: dict[int, dict[str, int]] = {}
    for ingestion_id, kind, rows in session.execute(query):
        counts.setdefault(ingestion_id, {})[kind] = int(rows or 0)
    return counts


def _summary(row: Ingestion, issues: dict[str, int]) -> IngestionSummary:
    return IngestionSummary(
        id=row.id,
        provider=row.provider,
        timeframe=row.timeframe,
        start=row.start_date,
        end=row.end_date,
        status=row.status,
        symbols_requested=row.symbols_requested,
        symbols_stored=row.symbols_stored,
        symbols_failed=row.symbols_failed,
        rows_received=row.rows_received,
        rows_inserted=row.rows_inserted,
        rows_updated=row.rows_updated,
        rows_unchanged=row.rows_unchanged,
        issues=issues,
        started_at=row.started_at,
        finished_at=row.finished_at,
        seconds=row.seconds,
        error=row.error,
    )


def _ingested_event(ingestion_id: int, report: FetchReport, status: str) -> Event:
    """The ``market-data`` event of a fetch that stored new or changed bars."""
    return Event(
        type="bars.ingested",
        source="breadthflow.data",
        data={
            "ingestion_id": ingestion_id,
            "status": status,
            "provider": report.provider,
            "timeframe": report.timeframe.value,
            "start": report.start.isoformat(),
            "end": report.end.isoformat(),
            "first_date": report.first_date.isoformat() if report.first_date else None,
            "last_date": report.last_date.isoformat() if report.last_date else None,
            "symbols_stored": report.symbols_stored,
            "rows_inserted": report.rows_inserted,
            "rows_updated": report.rows_updated,
            "failed_symbols": [f.symbol for f in report.failures],
        },
    )
