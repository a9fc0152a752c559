"""The ``paper`` kind: a live loop that trades a strategy's signals on a broker account.

Each run (run it on an interval: ``schedule = "5m"``, ``"1d"`` …):

1. **fetch** (per symbol, checkpointed): the latest bars the lake lacks.
2. **trade**: for every bar newer than the account's clock, in date order —
   ``broker.on_bar`` fills the orders of earlier signals at that bar's open (fees,
   slippage) and marks the account to its close; then the strategy's signals of that date
   become orders, filled at the next bar's open (by a later run when that bar is not yet
   there). The account (cash, positions, orders, fills, equity per bar) lives in the DB
   and carries over from run to run; signals are stored with the run's id.

Sizing (long only): a ``BUY`` opens a position worth ``equity / max_positions`` (whole
shares at the signal bar's close) unless the symbol is held or already ordered, or
``max_positions`` are open; a ``SELL`` closes the whole position. A market-level strategy
(its signal is for the universe) buys every symbol of the universe in equal value on
``BUY`` and sells everything on ``SELL``.

A new account starts at ``start`` (every bar from there is replayed) or, without one, at
the newest bar. ``max_bars_per_run`` limits how many bars one run advances — with the
static sample data, each run of the ``demo`` mode replays the next 10 sessions.

The broker is chosen by name (``broker``, default ``simulated``; ``execution.broker``);
``broker_options`` are passed to any other broker's constructor.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, parse_date
from breadthflow.execution.broker import BROKERS, Broker, open_broker
from breadthflow.pipelines._market import SAMPLE_END, MarketPipeline
from breadthflow.services.signals import strategy_config
from breadthflow.signals import Level, MarketData, Strategy
from breadthflow.store.signals import SignalRepository

DEFAULTS: dict[str, Any] = {
    "strategy": "sma_cross",
    "strategy_params": {},
    "hl_window": 50,
    "broker": "simulated",
    "broker_options": {},  # for brokers other than "simulated"
    "initial_cash": 100_000.0,
    "fees": 0.001,  # proportional, on traded value
    "slippage": 0.0005,  # proportional, against the order
    "max_positions": 5,
    "max_bars_per_run": None,  # None: every new bar
}
DEMO: dict[str, Any] = {
    "universe": "demo_small",
    "start": "2010-06-01",
    "end": SAMPLE_END,
    "max_bars_per_run": 10,
}
INPUT_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]


class PaperPipeline(MarketPipeline):
    """Trades a strategy on a broker account; the account persists across runs."""

    KIND = "paper"
    DEFAULTS = DEFAULTS
    DEMO = DEMO

    def _strategy(self) -> Strategy:
        s = self.settings
        if not isinstance(s["strategy_params"], dict):
            raise InvalidInputError(
                f"invalid strategy_params {s['strategy_params']!r} — expected a table of "
                "NAME = VALUE"
            )
        if s["broker"] not in BROKERS:
            raise InvalidInputError(
                f"unknown broker '{s['broker']}' — known: {', '.join(sorted(BROKERS))}"
            )
        self.integer("max_bars_per_run", optional=True)
        self.integer("max_positions")
        self.integer("hl_window", 2)
        for name in ("initial_cash", "fees", "slippage"):
            self.number(name)
        if not isinstance(s["broker_options"], dict):
            raise InvalidInputError(
                f"invalid broker_options {s['broker_options']!r} — expected a table of NAME = VALUE"
            )
        return strategy_config(self.ctx).build(str(s["strategy"]), s["strategy_params"])

    def broker(self) -> Broker:
        s = self.settings
        if s["broker"] == "simulated":
            options = {
                "initial_cash": float(s["initial_cash"]),
                "fees": float(s["fees"]),
                "slippage": float(s["slippage"]),
            }
        else:
            options = dict(s["broker_options"])
        return open_broker(s["broker"], self.ctx.db, self.definition.name, **options)

    def execute(self) -> None:
        strategy = self._strategy()
        s = self.settings
        symbols, universe = self.universe()
        label = self.label(symbols, universe)
        _, end = self.date_range()
        trade_start = parse_date(s["start"], "start") if s["start"] else None
        warm_days = math.ceil(strategy.warmup_bars() * 7 / 5) + 10
        first = trade_start or end - dt.timedelta(days=int(self.integer("lookback_days") or 0))
        fetch_from = first - dt.timedelta(days=warm_days)
        present = self.fetch_step(symbols, fetch_from, end)
        if not present:
            raise InvalidInputError(f"no bars stored for {label} — nothing to trade")
        broker = self.broker()

        def trade() -> dict[str, Any]:
            return self._trade(broker, strategy, present, label, fetch_from, end, trade_start)

        detail = self.run_step("trade", trade)
        self.counts.signals_generated = int(detail.get("signals", 0))
        account = broker.account()
        self.backtest_results = {
            "account": account.name, "equity": account.equity, "cash": account.cash,
            "total_pnl": account.total_pnl, "return_pct": account.return_pct,
            "open_positions": account.open_positions, "last_bar_date": account.last_bar_date,
        }  # fmt: skip

    def _trade(
        self,
        broker: Broker,
        strategy: Strategy,
        symbols: list[str],
        label: str,
        fetch_from: dt.date,
        end: dt.date,
        trade_start: dt.date | None,
    ) -> dict[str, Any]:
        s = self.settings
        bars = self.ctx.lake.read(symbols, Timeframe.D1, fetch_from, end, columns=INPUT_COLUMNS)
        dates: list[dt.date] = bars["date"].unique().sort().to_list()
        clock = broker.account().last_bar_date
        if clock is None:
            new = [d for d in dates if d >= trade_start] if trade_start else dates[-1:]
        else:
            new = [d for d in dates if d > clock]
        if s["max_bars_per_run"]:
            new = new[: int(s["max_bars_per_run"])]
        # The clock's own bar again: its orders are re-submitted (idempotently) in case
        # the previous run stopped between filling that bar and placing its orders.
        process = ([clock] if clock in dates else []) + new
        if not process:
            return {"bars": 0, "signals": 0, "fills": 0, "orders": 0, "clock": _iso(clock)}
        data = MarketData(bars.filter(pl.col("date") <= process[-1]), label, int(s["hl_window"]))
        signals = strategy.generate(data).filter(pl.col("date").is_in(process))
        stored = 0
        if new:
            fresh = signals.filter(pl.col("date").is_in(new))
            _, stored = SignalRepository(self.ctx.db).replace(
                fresh.to_dicts(),
                strategy=strategy.name,
                timeframe=Timeframe.D1.value,
                start=new[0],
                end=new[-1],
                symbols=[label] if strategy.level is Level.MARKET else symbols,
                pipeline_run_id=self.run_id,
            )
        fills = orders = 0
        for day in process:
            self.check_stop()
            today = bars.filter(pl.col("date") == day)
            prices = {
                r["symbol"]: (float(r["open"]), float(r["close"]))
                for r in today.iter_rows(named=True)
                if r["open"] is not None and r["close"] is not None
            }
            if day != clock:
                fills += len(broker.on_bar(day, prices))
            day_signals = signals.filter(pl.col("date") == day)
            orders += self._orders(broker, strategy, day_signals, day, prices, label)
        account = broker.account()
        self.log(
            "info",
            f"paper: {len(new)} new bar(s) to {new[-1] if new else clock}, {fills} fill(s), "
            f"{orders} order(s), equity {account.equity:,.2f}",
        )
        return {
            "bars": len(new), "first": _iso(new[0] if new else None),
            "last": _iso(new[-1] if new else None), "signals": stored, "fills": fills,
            "orders": orders, "equity": account.equity, "cash": account.cash,
            "clock": _iso(account.last_bar_date),
        }  # fmt: skip

    def _orders(
        self,
        broker: Broker,
        strategy: Strategy,
        rows: pl.DataFrame,
        day: dt.date,
        prices: dict[str, tuple[float, float]],
        label: str,
    ) -> int:
        """Turn one date's signals into orders; returns how many were placed."""
        held = {p.symbol: p.quantity for p in broker.positions() if p.quantity > 0}
        pending = broker.orders("pending")
        buying = {o.symbol for o in pending if o.side == "BUY"}
        selling = {o.symbol for o in pending if o.side == "SELL"}
        signals = rows.sort("confidence", "symbol", descending=[True, False]).to_dicts()
        if strategy.level is Level.MARKET:
            kinds = {r["signal_type"] for r in signals if r["symbol"] == label}
            buys = sorted(prices) if "BUY" in kinds else []
            sells = sorted(held) if "SELL" in kinds else []
            slots, size = len(buys), len(prices) or 1
        else:
            buys = [r["symbol"] for r in signals if r["signal_type"] == "BUY"]
            sells = [r["symbol"] for r in signals if r["signal_type"] == "SELL"]
            size = int(self.settings["max_positions"])
            slots = size - len(set(held) - set(sells) | buying)
        placed = 0
        reason = strategy.name
        for symbol in sells:
            if held.get(symbol, 0) > 0 and symbol not in selling:
                broker.submit(f"{day}:{symbol}:SELL", symbol, "SELL", held[symbol], day, reason,
                              self.run_id)  # fmt: skip
                placed += 1
        equity = broker.account().equity
        for symbol in buys:
            if slots <= 0:
                break
            if symbol in held or symbol in buying or symbol not in prices:
                continue
            quantity = math.floor(equity / size / prices[symbol][1])
            if quantity < 1:
                continue
            broker.submit(f"{day}:{symbol}:BUY", symbol, "BUY", quantity, day, reason, self.run_id)
            placed += 1
            slots -= 1
        return placed


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None
