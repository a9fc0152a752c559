"""Paper-trading accounts, orders, fills, positions and equity: the records and reads.

The simulated broker (``execution.broker``) changes an account bar by bar, each bar in one
transaction; this module creates accounts, records submitted orders (idempotently, by
``client_order_id``) and reads everything back for ``breadthflow paper …``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store.db import Database
from breadthflow.store.models import (
    ORDER_STATUSES,
    PaperAccountRow,
    PaperEquityRow,
    PaperFillRow,
    PaperOrderRow,
    PaperPositionRow,
    utcnow,
)


class Order(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    account: str
    client_order_id: str
    symbol: str
    side: str
    quantity: float
    status: str
    signal_date: dt.date
    reason: str
    submitted_at: dt.datetime
    filled_date: dt.date | None
    filled_quantity: float
    fill_price: float | None
    fee: float
    error: str | None
    pipeline_run_id: str | None


class Fill(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    order_id: int
    account: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    realized_pnl: float
    date: dt.date


class Position(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    symbol: str
    quantity: float
    avg_cost: float
    last_price: float
    market_value: float
    unrealized_pnl: float


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    broker: str
    initial_cash: float
    cash: float
    positions_value: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    total_pnl: float
    return_pct: float
    fees_paid: float
    fees: float
    slippage: float
    open_positions: int
    pending_orders: int
    last_bar_date: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime


class EquityPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    date: dt.date
    cash: float
    positions_value: float
    equity: float


class PaperRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_account(
        self, name: str, broker: str, initial_cash: float, fees: float, slippage: float
    ) -> Account:
        """The account ``name``, created with ``initial_cash`` on first use. An existing
        account keeps its cash; fees and slippage follow the latest settings."""
        if initial_cash <= 0:
            raise InvalidInputError(f"invalid initial cash {initial_cash!r} — expected > 0")
        for label, value in (("fees", fees), ("slippage", slippage)):
            if not 0 <= value < 0.1:
                raise InvalidInputError(f"invalid {label} {value!r} — expected 0 <= {label} < 0.1")
        with self.db.session() as session:
            row = session.scalar(select(PaperAccountRow).where(PaperAccountRow.name == name))
            if row is None:
                now = utcnow()
                row = PaperAccountRow(
                    name=name, broker=broker, initial_cash=float(initial_cash),
                    cash=float(initial_cash), realized_pnl=0.0, fees_paid=0.0, fees=fees,
                    slippage=slippage, created_at=now, updated_at=now,
                )  # fmt: skip
                session.add(row)
                session.flush()
            else:
                row.fees, row.slippage = fees, slippage
        return self.account(name)

    def account_id(self, session: Session, name: str) -> PaperAccountRow:
        row = session.scalar(select(PaperAccountRow).where(PaperAccountRow.name == name))
        if row is None:
            names = session.scalars(select(PaperAccountRow.name).order_by(PaperAccountRow.name))
            known = ", ".join(names) or "none yet — run a paper pipeline first"
            raise NotFoundError(f"no paper account '{name}' — known: {known}")
        return row

    def accounts(self) -> list[Account]:
        with self.db.session() as session:
            names = list(
                session.scalars(select(PaperAccountRow.name).order_by(PaperAccountRow.name))
            )
        return [self.account(n) for n in names]

    def account(self, name: str) -> Account:
        with self.db.session() as session:
            row = self.account_id(session, name)
            positions = session.scalars(
                select(PaperPositionRow).where(PaperPositionRow.account_id == row.id)
            ).all()
            pending = session.scalars(
                select(PaperOrderRow.id).where(
                    PaperOrderRow.account_id == row.id, PaperOrderRow.status == "pending"
                )
            ).all()
            value = sum(p.quantity * p.last_price for p in positions)
            unrealized = sum(p.quantity * (p.last_price - p.avg_cost) for p in positions)
            equity = row.cash + value
            return Account(
                name=row.name, broker=row.broker, initial_cash=row.initial_cash, cash=row.cash,
                positions_value=value, equity=equity, realized_pnl=row.realized_pnl,
                unrealized_pnl=unrealized, total_pnl=equity - row.initial_cash,
                return_pct=(equity / row.initial_cash - 1.0) * 100.0, fees_paid=row.fees_paid,
                fees=row.fees, slippage=row.slippage, open_positions=len(positions),
                pending_orders=len(pending), last_bar_date=row.last_bar_date,
                created_at=row.created_at, updated_at=row.updated_at,
            )  # fmt: skip

    def submit(
        self,
        name: str,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: float,
        signal_date: dt.date,
        reason: str = "",
        pipeline_run_id: str | None = None,
    ) -> Order:
        """Record a pending order; the same ``client_order_id`` again returns the first."""
        if side not in ("BUY", "SELL"):
            raise InvalidInputError(f"invalid order side {side!r} — expected BUY or SELL")
        if not quantity > 0:
            raise InvalidInputError(f"invalid order quantity {quantity!r} — expected > 0")
        with self.db.session() as session:
            account = self.account_id(session, name)
            existing = session.scalar(
                select(PaperOrderRow).where(
                    PaperOrderRow.account_id == account.id,
                    PaperOrderRow.client_order_id == client_order_id,
                )
            )
            if existing is not None:
                return _order(existing, name)
            row = PaperOrderRow(
                account_id=account.id, client_order_id=client_order_id, symbol=symbol,
                side=side, quantity=float(quantity), status="pending", signal_date=signal_date,
                reason=reason, submitted_at=utcnow(), filled_quantity=0.0, fee=0.0,
                pipeline_run_id=pipeline_run_id or "",
            )  # fmt: skip
            session.add(row)
            session.flush()
            return _order(row, name)

    def cancel(self, name: str, order_id: int) -> Order:
        with self.db.session() as session:
            account = self.account_id(session, name)
            row = session.get(PaperOrderRow, order_id)
            if row is None or row.account_id != account.id:
                raise NotFoundError(f"no order {order_id} in paper account '{name}'")
            if row.status == "pending":
                row.status = "cancelled"
            return _order(row, name)

    def orders(
        self, name: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Order]:
        """Newest first."""
        if status is not None and status not in ORDER_STATUSES:
            raise InvalidInputError(
                f"unknown order status '{status}' — expected one of {', '.join(ORDER_STATUSES)}"
            )
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        query = select(PaperOrderRow, PaperAccountRow.name).join(
            PaperAccountRow, PaperAccountRow.id == PaperOrderRow.account_id
        )
        with self.db.session() as session:
            if name is not None:
                query = query.where(PaperOrderRow.account_id == self.account_id(session, name).id)
            if status is not None:
                query = query.where(PaperOrderRow.status == status)
            query = query.order_by(PaperOrderRow.id.desc()).limit(limit)
            return [_order(row, account) for row, account in session.execute(query).all()]

    def fills(self, name: str | None = None, limit: int = 1000) -> list[Fill]:
        """Oldest first."""
        query = select(PaperFillRow, PaperAccountRow.name).join(
            PaperAccountRow, PaperAccountRow.id == PaperFillRow.account_id
        )
        with self.db.session() as session:
            if name is not None:
                query = query.where(PaperFillRow.account_id == self.account_id(session, name).id)
            rows = session.execute(query.order_by(PaperFillRow.id).limit(limit)).all()
            return [
                Fill(
                    id=r.id,
                    order_id=r.order_id,
                    account=account,
                    symbol=r.symbol,
                    side=r.side,
                    quantity=r.quantity,
                    price=r.price,
                    fee=r.fee,
                    realized_pnl=r.realized_pnl,
                    date=r.date,
                )
                for r, account in rows
            ]

    def positions(self, name: str | None = None) -> list[Position]:
        query = select(PaperPositionRow, PaperAccountRow.name).join(
            PaperAccountRow, PaperAccountRow.id == PaperPositionRow.account_id
        )
        with self.db.session() as session:
            if name is not None:
                query = query.where(
                    PaperPositionRow.account_id == self.account_id(session, name).id
                )
            rows = session.execute(
                query.order_by(PaperAccountRow.name, PaperPositionRow.symbol)
            ).all()
            return [
                Position(
                    account=account,
                    symbol=p.symbol,
                    quantity=p.quantity,
                    avg_cost=p.avg_cost,
                    last_price=p.last_price,
                    market_value=p.quantity * p.last_price,
                    unrealized_pnl=p.quantity * (p.last_price - p.avg_cost),
                )
                for p, account in rows
            ]

    def equity(self, name: str) -> list[EquityPoint]:
        with self.db.session() as session:
            account = self.account_id(session, name)
            rows = session.scalars(
                select(PaperEquityRow)
                .where(PaperEquityRow.account_id == account.id)
                .order_by(PaperEquityRow.date)
            ).all()
            return [
                EquityPoint(
                    date=r.date, cash=r.cash, positions_value=r.positions_value, equity=r.equity
                )
                for r in rows
            ]


def _order(row: PaperOrderRow, account: str) -> Order:
    return Order(
        id=row.id, account=account, client_order_id=row.client_order_id, symbol=row.symbol,
        side=row.side, quantity=row.quantity, status=row.status, signal_date=row.signal_date,
        reason=row.reason, submitted_at=row.submitted_at, filled_date=row.filled_date,
        filled_quantity=row.filled_quantity, fill_price=row.fill_price, fee=row.fee,
        error=row.error, pipeline_run_id=row.pipeline_run_id or None,
    )  # fmt: skip


def as_dict(model: BaseModel) -> dict[str, Any]:
    return model.model_dump()
