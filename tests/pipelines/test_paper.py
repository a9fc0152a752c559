"""Paper trading: the simulated broker against a hand computation (SQLite and PostgreSQL),
an account that persists across runs, and a broker plugged in by name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from breadthflow.core.config import get_settings
from breadthflow.execution import broker as broker_mod
from breadthflow.execution.broker import Broker, SimulatedBroker, open_broker
from breadthflow.services import paper as paper_svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.db import open_database
from breadthflow.store.paper import Account, Fill, Order, PaperRepository, Position

D1, D2, D3, D4 = (dt.date(2020, 1, d) for d in (2, 3, 6, 7))


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    close_all()
    get_settings.cache_clear()
    yield
    close_all()


@pytest.fixture
def broker(db_url: str) -> SimulatedBroker:
    db = open_database(db_url)
    return SimulatedBroker(db, "acct", initial_cash=10_000.0, fees=0.001, slippage=0.01)


def test_fills_cash_positions_and_pnl_equal_a_hand_computation(broker: SimulatedBroker) -> None:
    broker.submit("b1", "AAA", "BUY", 10, D1)
    assert broker.on_bar(D1, {"AAA": (99.0, 100.0)}) == []  # same-day order: not yet

    (buy,) = broker.on_bar(D2, {"AAA": (100.0, 110.0)})
    # Buy at the open plus 1 % slippage: 101; fee 0.1 % of 1,010 = 1.01.
    assert (buy.price, buy.fee) == pytest.approx((101.0, 1.01))
    account = broker.account()
    assert account.cash == pytest.approx(10_000 - 1_010 - 1.01)
    (position,) = broker.positions()
    assert position.avg_cost == pytest.approx(101.101)  # fees in the cost basis
    assert position.last_price == 110.0
    assert account.equity == pytest.approx(8_988.99 + 1_100)
    assert account.unrealized_pnl == pytest.approx(10 * (110 - 101.101))

    broker.submit("s1", "AAA", "SELL", 10, D2)
    (sell,) = broker.on_bar(D3, {"AAA": (120.0, 118.0)})
    # Sell at the open minus 1 %: 118.8; fee 1.188; realised 1,188 - 1.188 - 1,011.01.
    assert (sell.price, sell.fee) == pytest.approx((118.8, 1.188))
    assert sell.realized_pnl == pytest.approx(175.802)
    account = broker.account()
    assert account.cash == pytest.approx(8_988.99 + 1_188 - 1.188)
    assert broker.positions() == []
    assert account.realized_pnl == pytest.approx(175.802) == pytest.approx(account.total_pnl)
    assert account.fees_paid == pytest.approx(1.01 + 1.188)
    equity = PaperRepository(broker.db).equity("acct")
    assert [(p.date, round(p.equity, 6)) for p in equity] == [
        (D1, 10_000.0), (D2, round(8_988.99 + 1_100, 6)), (D3, round(10_175.802, 6)),
    ]  # fmt: skip


def test_a_buy_is_cut_to_the_cash_and_a_sell_without_position_is_rejected(
    broker: SimulatedBroker,
) -> None:
    broker.submit("b1", "AAA", "BUY", 1_000, D1)
    broker.submit("s1", "BBB", "SELL", 5, D1)

    (fill,) = broker.on_bar(D2, {"AAA": (100.0, 100.0), "BBB": (10.0, 10.0)})

    # 10,000 / (101 × 1.001) = 98.9… → 98 whole shares.
    assert fill.quantity == 98
    orders = {o.client_order_id: o for o in broker.orders()}
    assert orders["b1"].status == "filled" and orders["b1"].filled_quantity == 98
    assert orders["s1"].status == "rejected" and orders["s1"].error == "no position to sell"


def test_an_order_waits_for_a_bar_of_its_symbol(broker: SimulatedBroker) -> None:
    broker.submit("b1", "AAA", "BUY", 1, D1)
    assert broker.on_bar(D2, {"BBB": (10.0, 10.0)}) == []
    assert broker.orders("pending")[0].client_order_id == "b1"
    assert len(broker.on_bar(D3, {"AAA": (50.0, 50.0)})) == 1


def test_a_bar_is_applied_once_and_an_order_submitted_once(broker: SimulatedBroker) -> None:
    first = broker.submit("b1", "AAA", "BUY", 5, D1)
    again = broker.submit("b1", "AAA", "BUY", 5, D1)
    assert first.id == again.id and len(broker.orders()) == 1

    assert len(broker.on_bar(D2, {"AAA": (100.0, 100.0)})) == 1
    assert broker.on_bar(D2, {"AAA": (100.0, 100.0)}) == []  # a resumed run: no double fill
    assert len(broker.fills()) == 1 and broker.positions()[0].quantity == 5


# --- the pipeline ----------------------------------------------------------------------------


def make(ctx: AppContext, name: str = "pp", **parameters: Any) -> None:
    pipelines_svc.create_pipeline(
        ctx,
        {"name": name, "kind": "paper", "mode": "demo", "schedule": "5m",
         "parameters": {"max_bars_per_run": 15, **parameters}},
    )  # fmt: skip


def test_the_account_persists_across_two_runs() -> None:
    ctx = AppContext()
    make(ctx)

    first = pipelines_svc.run_now(ctx, "pp")
    assert first.status == "succeeded", first.error
    after_first = paper_svc.accounts(ctx, "pp")[0]
    first_orders = {o.id for o in paper_svc.orders(ctx, "pp")}
    assert after_first.last_bar_date == dt.date(2010, 6, 21)  # 15 sessions from 2010-06-01
    assert first_orders and after_first.cash < after_first.initial_cash

    second = pipelines_svc.run_now(ctx, "pp")
    assert second.status == "succeeded", second.error
    after_second = paper_svc.accounts(ctx, "pp")[0]

    assert after_second.last_bar_date == dt.date(2010, 7, 13)
    equity = paper_svc.equity(ctx, "pp")
    assert len(equity) == 30 and len({p.date for p in equity}) == 30
    assert equity[0].date == dt.date(2010, 6, 1)
    # Orders placed by the first run were filled (or kept) by the second, not placed again.
    orders = paper_svc.orders(ctx, "pp", limit=1000)
    assert len({o.client_order_id for o in orders}) == len(orders)
    assert first_orders <= {o.id for o in orders}
    fills = paper_svc.fills(ctx, "pp")
    assert any(f.date > dt.date(2010, 6, 21) for f in fills)
    # Cash = initial − buys + sells − fees, over every fill of both runs.
    flows = sum((-1 if f.side == "BUY" else 1) * f.quantity * f.price - f.fee for f in fills)
    assert after_second.cash == pytest.approx(after_second.initial_cash + flows)
    assert after_second.equity == pytest.approx(equity[-1].equity)
    runs = pipelines_svc.list_runs(ctx, "pp")
    assert runs[0].backtest_results["last_bar_date"] == "2010-07-13"
    assert runs[0].signals_generated + runs[1].signals_generated > 0


class RecordingBroker(Broker):
    """A stand-in for a real broker: it accepts orders and never fills them itself."""

    name = "recording"
    submitted: ClassVar[list[tuple[str, str, float]]] = []

    def __init__(self, db: Any, account: str, **options: Any) -> None:
        self.inner = SimulatedBroker(db, account)
        self.options = options

    def account(self) -> Account:
        return self.inner.account()

    def positions(self) -> list[Position]:
        return []

    def submit(self, client_order_id: str, symbol: str, side: str, quantity: float,
               signal_date: dt.date, reason: str = "", pipeline_run_id: str | None = None,
               ) -> Order:  # fmt: skip
        RecordingBroker.submitted.append((symbol, side, quantity))
        return self.inner.submit(client_order_id, symbol, side, quantity, signal_date, reason)

    def cancel(self, order_id: int) -> Order:
        return self.inner.cancel(order_id)

    def orders(self, status: str | None = None) -> list[Order]:
        return self.inner.orders(status)

    def fills(self) -> list[Fill]:
        return []


def test_a_broker_is_plugged_in_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(broker_mod.BROKERS, "recording", RecordingBroker)
    RecordingBroker.submitted = []
    ctx = AppContext()
    make(ctx, broker="recording", broker_options={"key": "k"}, max_bars_per_run=30)

    outcome = pipelines_svc.run_now(ctx, "pp")

    assert outcome.status == "succeeded", outcome.error
    # It holds nothing (it reports no positions), so every order it got is a buy.
    assert RecordingBroker.submitted
    assert {side for _, side, _ in RecordingBroker.submitted} == {"BUY"}
    assert paper_svc.fills(ctx, "pp") == []  # the base on_bar of a real broker fills nothing


def test_unknown_broker_is_one_line() -> None:
    ctx = AppContext()
    make(ctx, broker="ibkr")
    outcome = pipelines_svc.run_now(ctx, "pp")
    assert outcome.status == "failed"
    assert "unknown broker 'ibkr' — known: simulated" in (outcome.error or "")
    with pytest.raises(Exception, match="unknown broker"):
        open_broker("ibkr", ctx.db, "x")


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"max_positions": 0}, "max_positions=0 — expected a whole number >= 1"),
        ({"fees": "cheap"}, "fees='cheap' — expected a number"),
        ({"start": "June"}, "June"),
        ({"strategy": "moon"}, "unknown strategy 'moon'"),
        ({"speed": 3}, "unknown paper pipeline parameter(s) speed"),
    ],
)
def test_bad_parameters_fail_the_run_with_one_line(parameters: dict, fragment: str) -> None:
    ctx = AppContext()
    make(ctx, **parameters)
    outcome = pipelines_svc.run_now(ctx, "pp")
    assert outcome.status == "failed"
    assert fragment in (outcome.error or "")
    assert "Traceback" not in (outcome.error or "")
