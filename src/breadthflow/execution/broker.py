"""Brokers: where paper (and, later, real) orders go.

:class:`Broker` is the interface a pipeline trades through — submit and cancel orders,
read cash, positions, orders and fills, and hand it each new bar (:meth:`Broker.on_bar`;
a real broker fills on its own and ignores it). Brokers register by name
(:func:`register_broker`); ``paper`` pipelines pick one with the ``broker`` parameter, so a
real broker is one new class.

:class:`SimulatedBroker` keeps its account in the metadata DB (``paper_*`` tables) and
fills market orders at the **open of the first bar after the signal date**:

- buy price ``open × (1 + slippage)``; sell price ``open × (1 − slippage)``;
- fee ``quantity × price × fees``, paid in cash;
- whole shares; a buy is cut to what the cash pays for (fee included) and rejected when
  that is zero; a sell is cut to the position and rejected without one;
- sells fill before buys on a bar (their cash pays for the buys);
- ``avg_cost`` of a position includes its buy fees; a sell realises
  ``quantity × price − fee − quantity × avg_cost``;
- after the fills, positions are marked to the bar's close and the equity
  (cash + Σ quantity × close) is recorded for the date.

Each bar is applied in one transaction, and a bar already applied is skipped, so a crash
or a resumed run never fills an order twice.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from sqlalchemy import select

from breadthflow.core.errors import unknown_name
from breadthflow.store.db import Database
from breadthflow.store.models import (
    PaperEquityRow,
    PaperFillRow,
    PaperOrderRow,
    PaperPositionRow,
    utcnow,
)
from breadthflow.store.paper import Account, Fill, Order, PaperRepository, Position

#: A bar as the broker sees it: symbol → (open, close).
Bars = Mapping[str, tuple[float, float]]


class Broker(ABC):
    """What a pipeline needs from a broker."""

    name: ClassVar[str]

    @abstractmethod
    def account(self) -> Account:
        """Cash, equity, PnL and the date of the last bar seen."""

    @abstractmethod
    def positions(self) -> list[Position]: ...

    def cash(self) -> float:
        return self.account().cash

    @abstractmethod
    def submit(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: float,
        signal_date: dt.date,
        reason: str = "",
        pipeline_run_id: str | None = None,
    ) -> Order:
        """Place a market order; the same ``client_order_id`` twice places it once."""

    @abstractmethod
    def cancel(self, order_id: int) -> Order: ...

    @abstractmethod
    def orders(self, status: str | None = None) -> list[Order]: ...

    @abstractmethod
    def fills(self) -> list[Fill]: ...

    def on_bar(self, date: dt.date, bars: Bars) -> list[Fill]:
        """A new bar of the market. A real broker fills by itself: nothing to do."""
        return []


BrokerFactory = Callable[..., Broker]
BROKERS: dict[str, BrokerFactory] = {}


def register_broker(name: str) -> Callable[[BrokerFactory], BrokerFactory]:
    def decorate(factory: BrokerFactory) -> BrokerFactory:
        if name in BROKERS:
            raise ValueError(f"broker {name!r} registered twice")
        BROKERS[name] = factory
        return factory

    return decorate


def open_broker(name: str, db: Database, account: str, **options: Any) -> Broker:
    """The broker registered as ``name``, trading account ``account``."""
    if name not in BROKERS:
        raise unknown_name("broker", name, BROKERS)
    return BROKERS[name](db, account, **options)


@register_broker("simulated")
class SimulatedBroker(Broker):
    """A paper account in the DB; see the module docstring for the fill rules."""

    name = "simulated"

    def __init__(
        self,
        db: Database,
        account: str,
        initial_cash: float = 100_000.0,
        fees: float = 0.001,
        slippage: float = 0.0005,
    ) -> None:
        self.db = db
        self.repo = PaperRepository(db)
        self.account_name = account
        self.repo.ensure_account(account, self.name, initial_cash, fees, slippage)

    def account(self) -> Account:
        return self.repo.account(self.account_name)

    def positions(self) -> list[Position]:
        return self.repo.positions(self.account_name)

    def submit(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        quantity: float,
        signal_date: dt.date,
        reason: str = "",
        pipeline_run_id: str | None = None,
    ) -> Order:
        return self.repo.submit(
            self.account_name, client_order_id, symbol, side, quantity, signal_date, reason,
            pipeline_run_id,
        )  # fmt: skip

    def cancel(self, order_id: int) -> Order:
        return self.repo.cancel(self.account_name, order_id)

    def orders(self, status: str | None = None) -> list[Order]:
        return self.repo.orders(self.account_name, status, limit=100_000)

    def fills(self) -> list[Fill]:
        return self.repo.fills(self.account_name, limit=1_000_000)

    def on_bar(self, date: dt.date, bars: Bars) -> list[Fill]:
        """Fill the pending orders of earlier signal dates at this bar's open, mark the
        account to its close, and move the account's clock to ``date`` — one transaction."""
        made: list[Fill] = []
        with self.db.session() as session:
            account = self.repo.account_id(session, self.account_name)
            if account.last_bar_date is not None and date <= account.last_bar_date:
                return []  # applied before (a resumed run)
            pending = session.scalars(
                select(PaperOrderRow).where(
                    PaperOrderRow.account_id == account.id,
                    PaperOrderRow.status == "pending",
                    PaperOrderRow.signal_date < date,
                )
            ).all()
            held = {
                p.symbol: p
                for p in session.scalars(
                    select(PaperPositionRow).where(PaperPositionRow.account_id == account.id)
                ).all()
            }
            # Sells first: their proceeds pay for the buys of the same bar.
            for order in sorted(pending, key=lambda o: (o.side != "SELL", o.id)):
                if order.symbol not in bars:
                    continue  # no bar for the symbol today: the order waits
                open_price = bars[order.symbol][0]
                if order.side == "SELL":
                    fill = self._sell(session, account, order, held, open_price, date)
                else:
                    fill = self._buy(session, account, order, held, open_price, date)
                if fill is not None:
                    made.append(fill)
            now = utcnow()
            for symbol, position in held.items():
                if symbol in bars:
                    position.last_price = bars[symbol][1]
                    position.updated_at = now
            value = sum(p.quantity * p.last_price for p in held.values())
            session.merge(
                PaperEquityRow(
                    account_id=account.id,
                    date=date,
                    cash=account.cash,
                    positions_value=value,
                    equity=account.cash + value,
                )
            )
            account.last_bar_date = date
            account.updated_at = now
        return made

    def _sell(
        self,
        session: Any,
        account: Any,
        order: PaperOrderRow,
        held: dict[str, PaperPositionRow],
        open_price: float,
        date: dt.date,
    ) -> Fill | None:
        position = held.get(order.symbol)
        if position is None or position.quantity <= 0:
            order.status, order.error = "rejected", "no position to sell"
            return None
        quantity = min(order.quantity, position.quantity)
        price = open_price * (1.0 - account.slippage)
        fee = quantity * price * account.fees
        realized = quantity * price - fee - quantity * position.avg_cost
        account.cash += quantity * price - fee
        account.realized_pnl += realized
        account.fees_paid += fee
        position.quantity -= quantity
        if position.quantity <= 1e-9:
            session.delete(position)
            del held[order.symbol]
        return self._record(session, account, order, quantity, price, fee, realized, date)

    def _buy(
        self,
        session: Any,
        account: Any,
        order: PaperOrderRow,
        held: dict[str, PaperPositionRow],
        open_price: float,
        date: dt.date,
    ) -> Fill | None:
        price = open_price * (1.0 + account.slippage)
        affordable = math.floor(account.cash / (price * (1.0 + account.fees)) + 1e-9)
        quantity = float(min(order.quantity, affordable))
        if quantity < 1:
            order.status, order.error = "rejected", "insufficient cash"
            return None
        fee = quantity * price * account.fees
        account.cash -= quantity * price + fee
        account.fees_paid += fee
        position = held.get(order.symbol)
        if position is None:
            position = PaperPositionRow(
                account_id=account.id, symbol=order.symbol, quantity=0.0, avg_cost=0.0,
                last_price=price, updated_at=utcnow(),
            )  # fmt: skip
            session.add(position)
            held[order.symbol] = position
        cost = position.quantity * position.avg_cost + quantity * price + fee
        position.quantity += quantity
        position.avg_cost = cost / position.quantity
        return self._record(session, account, order, quantity, price, fee, 0.0, date)

    def _record(
        self,
        session: Any,
        account: Any,
        order: PaperOrderRow,
        quantity: float,
        price: float,
        fee: float,
        realized: float,
        date: dt.date,
    ) -> Fill:
        order.status, order.filled_date = "filled", date
        order.filled_quantity, order.fill_price, order.fee = quantity, price, fee
        row = PaperFillRow(
            order_id=order.id, account_id=account.id, symbol=order.symbol, side=order.side,
            quantity=quantity, price=price, fee=fee, realized_pnl=realized, date=date,
            created_at=utcnow(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return Fill(
            id=row.id, order_id=order.id, account=self.account_name, symbol=order.symbol,
            side=order.side, quantity=quantity, price=price, fee=fee, realized_pnl=realized,
            date=date,
        )  # fmt: skip
