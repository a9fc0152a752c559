"""Stored signals: replace a generated batch, query, summarise.

A batch is identified by (strategy, timeframe, pipeline run, symbols, date range):
:meth:`SignalRepository.replace` deletes what that batch stored before and inserts the
new rows in one transaction, so regenerating never duplicates and a failure leaves the
previous rows untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, case, delete, func, insert, select
from sqlalchemy.sql.elements import ColumnElement

from breadthflow.bus.events import TRADING_SIGNALS, Event
from breadthflow.bus.outbox import record as record_events
from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Signal, SignalType, normalize_symbol
from breadthflow.store._json import finite_or_none, json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import SignalRow, utcnow

# Bound parameters per statement stay far below SQLite's and PostgreSQL's limits.
_IN_CHUNK = 500


class SignalFilter(BaseModel):
    """Which stored signals a query means; every field is optional."""

    model_config = ConfigDict(frozen=True)

    strategy: str | None = None
    symbol: str | None = None
    signal_type: SignalType | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    timeframe: str | None = None
    pipeline_run_id: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c: list[ColumnElement[bool]] = []
        if self.strategy:
            c.append(SignalRow.strategy == self.strategy)
        if self.symbol:
            c.append(SignalRow.symbol == self.symbol)
        if self.signal_type:
            c.append(SignalRow.signal_type == self.signal_type.value)
        if self.since:
            c.append(SignalRow.date >= self.since)
        if self.until:
            c.append(SignalRow.date <= self.until)
        if self.timeframe:
            c.append(SignalRow.timeframe == self.timeframe)
        if self.pipeline_run_id is not None:
            c.append(SignalRow.pipeline_run_id == self.pipeline_run_id)
        return c


class StrategySummary(BaseModel):
    """Stored signals of one strategy, as ``signals summary`` shows them."""

    strategy: str
    signals: int
    buy: int
    sell: int
    hold: int
    symbols: int
    first_date: dt.date
    last_date: dt.date
    last_created: dt.datetime


class SignalRepository:
    """Signals in the metadata DB.

    >>> repo = SignalRepository(db)                                           # doctest: +SKIP
    >>> repo.replace(rows, strategy="golden_cross", timeframe="1d", start=a, end=b,
    ...              symbols=["AAPL", "MSFT"])                                 # doctest: +SKIP
    (0, 12)
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def replace(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        strategy: str,
        timeframe: str,
        start: dt.date,
        end: dt.date,
        symbols: Sequence[str],
        pipeline_run_id: str | None = None,
    ) -> tuple[int, int]:
        """Store ``rows`` (``symbol, date, signal_type, confidence, strength, factors``)
        as the batch (strategy, timeframe, run, symbols, start → end), replacing whatever
        that batch held. Rows outside the batch are refused. Returns (deleted, inserted)."""
        run = pipeline_run_id or ""
        wanted = set(symbols)
        now = utcnow()
        records = []
        for row in rows:
            if row["symbol"] not in wanted or not start <= row["date"] <= end:
                raise ValueError(f"signal {row['symbol']} {row['date']} is outside the batch")
            records.append(
                {
                    "symbol": row["symbol"],
                    "date": row["date"],
                    "timeframe": timeframe,
                    "strategy": strategy,
                    "signal_type": SignalType(row["signal_type"]).value,
                    "confidence": float(row["confidence"]),
                    "strength": finite_or_none(row.get("strength")),
                    "factors": json_safe(row.get("factors") or {}),
                    "create_time": now,
                    "pipeline_run_id": run,
                }
            )
        deleted = 0
        with self.db.session() as session:
            for chunk in _chunks(sorted(wanted)):
                result = session.execute(
                    delete(SignalRow).where(
                        SignalRow.strategy == strategy,
                        SignalRow.timeframe == timeframe,
                        SignalRow.pipeline_run_id == run,
                        SignalRow.date.between(start, end),
                        SignalRow.symbol.in_(chunk),
                    )
                )
                deleted += result.rowcount or 0  # type: ignore[attr-defined]
            if records:
                session.execute(insert(SignalRow), records)
                # The event commits with the signals: a crash cannot store one without
                # the other (the relay forwards it to an external bus).
                event = stored_signals_event(records, strategy, timeframe, start, end, run)
                record_events(session, TRADING_SIGNALS, [event])
        return deleted, len(records)

    def list(
        self, where: SignalFilter | None = None, limit: int | None = 100, offset: int = 0
    ) -> list[Signal]:
        """Signals matching ``where``, newest date first (then symbol, strategy)."""
        if limit is not None and limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        if offset < 0:
            raise InvalidInputError(f"invalid offset {offset} — expected 0 or more")
        query = self._where(select(SignalRow), where).order_by(
            SignalRow.date.desc(), SignalRow.symbol, SignalRow.strategy, SignalRow.id
        )
        if limit is not None:
            query = query.limit(limit)
        with self.db.session() as session:
            return [_signal(r) for r in session.scalars(query.offset(offset))]

    def count(self, where: SignalFilter | None = None) -> int:
        query = self._where(select(func.count()).select_from(SignalRow), where)
        with self.db.session() as session:
            return int(session.scalar(query) or 0)

    def summary(self, where: SignalFilter | None = None) -> list[StrategySummary]:
        """One line per strategy with stored signals, by name."""
        kind = SignalRow.signal_type
        query = self._where(
            select(
                SignalRow.strategy,
                func.count(),
                func.sum(case((kind == "BUY", 1), else_=0)),
                func.sum(case((kind == "SELL", 1), else_=0)),
                func.sum(case((kind == "HOLD", 1), else_=0)),
                func.count(SignalRow.symbol.distinct()),
                func.min(SignalRow.date),
                func.max(SignalRow.date),
                func.max(SignalRow.create_time),
            ),
            where,
        ).group_by(SignalRow.strategy)
        with self.db.session() as session:
            rows = session.execute(query.order_by(SignalRow.strategy)).all()
        return [
            StrategySummary(
                strategy=r[0],
                signals=r[1],
                buy=r[2] or 0,
                sell=r[3] or 0,
                hold=r[4] or 0,
                symbols=r[5],
                first_date=r[6],
                last_date=r[7],
                last_created=r[8],
            )
            for r in rows
        ]

    @staticmethod
    def _where(query: Select[Any], where: SignalFilter | None) -> Select[Any]:
        clauses = where.clauses() if where else []
        return query.where(*clauses) if clauses else query


_BIAS = {"BUY": "BULLISH", "SELL": "BEARISH", "HOLD": "NEUTRAL"}


def stored_signals_event(
    records: Sequence[Mapping[str, Any]],
    strategy: str,
    timeframe: str,
    start: dt.date,
    end: dt.date,
    pipeline_run_id: str,
) -> Event:
    """The ``trading-signals`` event of a stored batch: each symbol's latest signal.

    Stock symbols go to ``tickers`` in the scanner shape (confidence in percent);
    market-level signals, stored under a universe name, go to ``markets``.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for row in records:
        if row["symbol"] not in latest or row["date"] > latest[row["symbol"]]["date"]:
            latest[row["symbol"]] = row
    tickers: list[dict[str, Any]] = []
    markets: list[dict[str, Any]] = []
    for symbol, row in sorted(latest.items()):
        item = {
            "signal": _BIAS[row["signal_type"]],
            "confidence": round(float(row["confidence"]) * 100, 4),
            "signal_type": row["signal_type"],
            "strength": row["strength"],
            "date": row["date"].isoformat(),
        }
        try:
            is_ticker = normalize_symbol(symbol) == symbol
        except InvalidInputError:
            is_ticker = False
        if is_ticker:
            tickers.append({"ticker": symbol, **item})
        else:
            markets.append({"universe": symbol, **item})
    return Event(
        type="signals.stored",
        source="breadthflow.signals",
        data={
            "strategy": strategy,
            "timeframe": timeframe,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "pipeline_run_id": pipeline_run_id or None,
            "stored": len(records),
            "tickers": tickers,
            "markets": markets,
        },
    )


def _signal(row: SignalRow) -> Signal:
    return Signal(
        symbol=row.symbol,
        date=row.date,
        timeframe=row.timeframe,
        strategy=row.strategy,
        signal_type=SignalType(row.signal_type),
        confidence=row.confidence,
        strength=row.strength,
        factors=row.factors or {},
        create_time=row.create_time,
        pipeline_run_id=row.pipeline_run_id or None,
    )


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]
