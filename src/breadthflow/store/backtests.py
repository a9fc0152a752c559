"""The backtest log: one row per backtest or research run, with its stats.

The row is written when the run starts (status ``running``) and committed at once, so a
run that is killed leaves a visible trace; :meth:`BacktestRepository.finish` records the
stats and where the equity curve and trades were stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from breadthflow.bus.events import BACKTEST_RESULTS, Event
from breadthflow.bus.outbox import record as record_events
from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store._json import json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import BACKTEST_KINDS, BacktestRow, utcnow


class BacktestSummary(BaseModel):
    """One stored backtest, as ``backtest list`` / ``backtest show`` and the API show it."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str
    strategy: str
    params: dict[str, Any]
    universe: str
    symbols: list[str]
    start: dt.date
    end: dt.date
    config: dict[str, Any]
    stats: dict[str, Any] | None
    status: str
    error: str | None
    artifacts: str | None
    pipeline_run_id: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float | None


class BacktestRepository:
    """Record backtests and read them back.

    >>> repo = BacktestRepository(db)                                        # doctest: +SKIP
    >>> run = repo.start("run", "sma_cross", {"fast": 10}, "dow30", symbols, a, b, cfg)
    >>> repo.finish(run, stats, artifacts="backtests/run=1")                # doctest: +SKIP
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def start(
        self,
        kind: str,
        strategy: str,
        params: Mapping[str, Any],
        universe: str,
        symbols: Sequence[str],
        start: dt.date,
        end: dt.date,
        config: Mapping[str, Any],
        pipeline_run_id: str | None = None,
    ) -> int:
        """Record a run that is beginning; committed before returning its id."""
        if kind not in BACKTEST_KINDS:
            raise ValueError(f"unknown backtest kind {kind!r}")
        row = BacktestRow(
            kind=kind,
            strategy=strategy,
            params=json_safe(dict(params)),
            universe=universe,
            symbols=list(symbols),
            start_date=start,
            end_date=end,
            config=json_safe(dict(config)),
            status="running",
            pipeline_run_id=pipeline_run_id or "",
            created_at=utcnow(),
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def finish(
        self, backtest_id: int, stats: Mapping[str, Any], artifacts: str | None = None
    ) -> None:
        with self.db.session() as session:
            row = self._row(session, backtest_id)
            now = utcnow()
            row.stats = json_safe(dict(stats))
            row.artifacts = artifacts
            row.status = "succeeded"
            row.finished_at = now
            row.seconds = (now - row.created_at).total_seconds()
            # Published with the change that caused it (the outbox): backtest-results.
            record_events(session, BACKTEST_RESULTS, [backtest_event(row)])

    def fail(self, backtest_id: int, error: str) -> None:
        """Mark a running backtest failed; a finished one keeps its outcome."""
        with self.db.session() as session:
            row = self._row(session, backtest_id)
            if row.status != "running":
                return
            now = utcnow()
            row.status, row.error, row.finished_at = "failed", error, now
            row.seconds = (now - row.created_at).total_seconds()

    def get(self, backtest_id: int) -> BacktestSummary:
        with self.db.session() as session:
            return _summary(self._row(session, backtest_id))

    def list(
        self,
        limit: int = 20,
        offset: int = 0,
        strategy: str | None = None,
        kind: str | None = None,
    ) -> list[BacktestSummary]:
        """Newest first."""
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        if offset < 0:
            raise InvalidInputError(f"invalid offset {offset} — expected 0 or more")
        query = select(BacktestRow)
        if strategy:
            query = query.where(BacktestRow.strategy == strategy)
        if kind:
            query = query.where(BacktestRow.kind == kind)
        query = query.order_by(BacktestRow.created_at.desc(), BacktestRow.id.desc())
        with self.db.session() as session:
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [_summary(r) for r in rows]

    def count(self, strategy: str | None = None, kind: str | None = None) -> int:
        query = select(func.count()).select_from(BacktestRow)
        if strategy:
            query = query.where(BacktestRow.strategy == strategy)
        if kind:
            query = query.where(BacktestRow.kind == kind)
        with self.db.session() as session:
            return int(session.scalar(query) or 0)

    @staticmethod
    def _row(session: Session, backtest_id: int) -> BacktestRow:
        row = session.get(BacktestRow, backtest_id)
        if row is None:
            raise NotFoundError(f"no backtest with id {backtest_id} — `backtest list` shows them")
        return row


def _summary(row: BacktestRow) -> BacktestSummary:
    return BacktestSummary(
        id=row.id,
        kind=row.kind,
        strategy=row.strategy,
        params=row.params or {},
        universe=row.universe,
        symbols=list(row.symbols or []),
        start=row.start_date,
        end=row.end_date,
        config=row.config or {},
        stats=row.stats,
        status=row.status,
        error=row.error,
        artifacts=row.artifacts,
        pipeline_run_id=row.pipeline_run_id or None,
        created_at=row.created_at,
        finished_at=row.finished_at,
        seconds=row.seconds,
    )


def backtest_event(row: BacktestRow) -> Event:
    """The ``backtest-results`` event of a finished backtest: what ran and its headline
    statistics (the scalar ones; curves and tables stay in the lake, under ``artifacts``)."""
    stats = {k: v for k, v in (row.stats or {}).items() if isinstance(v, int | float | str | None)}
    return Event(
        type=f"backtest.{row.kind}.succeeded",
        source="breadthflow.backtest",
        data={
            "backtest_id": row.id,
            "kind": row.kind,
            "strategy": row.strategy,
            "params": row.params,
            "universe": row.universe,
            "start": row.start_date.isoformat(),
            "end": row.end_date.isoformat(),
            "stats": stats,
            "artifacts": row.artifacts,
            "pipeline_run_id": row.pipeline_run_id or None,
        },
    )
