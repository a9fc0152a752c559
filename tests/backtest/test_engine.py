"""The engine against a plain-Python, bar-by-bar reference written from the execution model
in docs/backtesting.md — on real bars (AAPL/MSFT/GOOG 2010–2012) with the SMA-cross and
RSI strategies, fees and slippage — plus small hand-made cases for each rule."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from breadthflow.backtest.config import BacktestConfig, config_from
from breadthflow.backtest.engine import BacktestResult, run_backtest
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.core.errors import InvalidInputError
from tests.backtest.conftest import Signals, rsi_cross_signals, sma_cross_signals

# --- the reference: one account, bar by bar, in plain Python ---------------------------------


@dataclass
class Position:
    side: int  # +1 long, -1 short
    shares: float
    entry_price: float
    entry_row: int
    entry_cash: float  # cash change at the entry: -(cost incl. fees) long, +net proceeds short
    entry_fees: float
    best: float  # best close since the entry, starting at the entry price


@dataclass
class Trade:
    column: int
    side: int
    entry_row: int
    entry_price: float
    exit_row: int | None
    exit_price: float
    shares: float
    pnl: float
    fees: float
    reason: str


@dataclass
class Run:
    equity: list[float]
    cash: list[float]
    trades: list[Trade]


def reference_account(
    prices: PriceMatrix,
    columns: list[int],
    entries: np.ndarray,
    exits: np.ndarray,
    cfg: BacktestConfig,
) -> Run:
    """One account trading ``columns`` of the matrix, following the documented rules."""
    cost = cfg.fees + cfg.slippage
    opens, highs, lows, closes = (
        getattr(prices, f).tolist() for f in ("open", "high", "low", "close")
    )
    buy, sell = entries.tolist(), exits.tolist()
    cash = cfg.cash
    positions: dict[int, Position] = {}
    pending: dict[int, int] = {}
    last: dict[int, float] = {}
    trades: list[Trade] = []
    equity_curve: list[float] = []
    cash_curve: list[float] = []

    def close_position(j: int, price: float, row: int, reason: str) -> None:
        nonlocal cash
        p = positions.pop(j)
        value = p.shares * price
        received = value - value * cost if p.side == 1 else -(value + value * cost)
        cash += received
        trades.append(
            Trade(j, p.side, p.entry_row, p.entry_price, row, price, p.shares,
                  p.entry_cash + received, p.entry_fees + value * cost, reason)
        )  # fmt: skip

    def stop_exit(p: Position, o: float, h: float, low: float) -> tuple[str, float] | None:
        # stop loss first, then trailing stop, then take profit; gap through → the open
        if p.side == 1:
            if cfg.stop_loss is not None and low <= p.entry_price * (1 - cfg.stop_loss):
                return "stop_loss", min(o, p.entry_price * (1 - cfg.stop_loss))
            if cfg.trailing_stop is not None and low <= p.best * (1 - cfg.trailing_stop):
                return "trailing_stop", min(o, p.best * (1 - cfg.trailing_stop))
            if cfg.take_profit is not None and h >= p.entry_price * (1 + cfg.take_profit):
                return "take_profit", max(o, p.entry_price * (1 + cfg.take_profit))
        else:
            if cfg.stop_loss is not None and h >= p.entry_price * (1 + cfg.stop_loss):
                return "stop_loss", max(o, p.entry_price * (1 + cfg.stop_loss))
            if cfg.trailing_stop is not None and h >= p.best * (1 + cfg.trailing_stop):
                return "trailing_stop", max(o, p.best * (1 + cfg.trailing_stop))
            if cfg.take_profit is not None and low <= p.entry_price * (1 - cfg.take_profit):
                return "take_profit", min(o, p.entry_price * (1 - cfg.take_profit))
        return None

    def fill(row: int, price_row: list[float], marks: dict[int, float | None]) -> None:
        nonlocal cash
        ready = [j for j in columns if j in pending and not math.isnan(price_row[j])]
        for j in ready:  # exits (and covers) first, in symbol order
            if j in positions and positions[j].side == -pending[j]:
                close_position(j, price_row[j], row, "signal")
        for j in ready:  # then entries, in symbol order
            order = pending.pop(j)
            if j in positions or (order == -1 and cfg.direction == "long"):
                continue
            if cfg.max_positions is not None and len(positions) >= cfg.max_positions:
                continue
            equity = cash
            available = cash
            for k, p in positions.items():
                equity += p.side * p.shares * marks[k]
                if p.side == -1:
                    available -= p.shares * marks[k]
            if cfg.sizing == "all_in":
                budget = available
            elif cfg.sizing == "fixed_fraction":
                budget = cfg.fraction * equity
            else:
                budget = equity / (cfg.max_positions or len(columns))
            if not cfg.margin:
                budget = min(budget, available)
            if budget <= 0:
                continue
            price = price_row[j]
            shares = budget / (price * (1 + cost))
            if cfg.integer_shares:
                shares = math.floor(shares)
            if shares <= 0:
                continue
            value = shares * price
            entry_cash = -(value + value * cost) if order == 1 else value - value * cost
            cash += entry_cash
            positions[j] = Position(order, shares, price, row, entry_cash, value * cost, price)

    for t in range(len(prices.dates)):
        signal = {j: (1 if buy[t][j] else -1) if buy[t][j] != sell[t][j] else 0 for j in columns}
        has_bar = {j: not math.isnan(closes[t][j]) for j in columns}
        if cfg.execution == "close":
            pending.update({j: s for j, s in signal.items() if s})
        else:  # orders decided at the previous close fill at this open
            fill(t, opens[t], {j: opens[t][j] if has_bar[j] else last.get(j) for j in columns})
        for j in columns:
            if not has_bar[j]:
                continue
            if j in positions and (cfg.execution == "open" or positions[j].entry_row < t):
                hit = stop_exit(positions[j], opens[t][j], highs[t][j], lows[t][j])
                if hit is not None:
                    close_position(j, hit[1], t, hit[0])
            if j in positions:
                p = positions[j]
                p.best = max(p.best, closes[t][j]) if p.side == 1 else min(p.best, closes[t][j])
            last[j] = closes[t][j]
        if cfg.execution == "close":
            fill(t, closes[t], dict(last))
        equity_curve.append(cash + sum(p.side * p.shares * last[j] for j, p in positions.items()))
        cash_curve.append(cash)
        if cfg.execution == "open":
            pending.update({j: s for j, s in signal.items() if s})
    for j, p in positions.items():  # still open: valued at the last close, no exit costs
        trades.append(
            Trade(j, p.side, p.entry_row, p.entry_price, None, last[j], p.shares,
                  p.entry_cash + p.side * p.shares * last[j], p.entry_fees, "end")
        )  # fmt: skip
    return Run(equity_curve, cash_curve, trades)


def reference(
    prices: PriceMatrix, entries: np.ndarray, exits: np.ndarray, cfg: BacktestConfig
) -> Run:
    """Portfolio mode: one account over every symbol; otherwise one account per symbol,
    summed."""
    n = len(prices.symbols)
    if cfg.portfolio:
        return reference_account(prices, list(range(n)), entries, exits, cfg)
    runs = [reference_account(prices, [j], entries, exits, cfg) for j in range(n)]
    return Run(
        [sum(r.equity[t] for r in runs) for t in range(len(prices.dates))],
        [sum(r.cash[t] for r in runs) for t in range(len(prices.dates))],
        [trade for r in runs for trade in r.trades],
    )


def day(prices: PriceMatrix, row: int) -> dt.date:
    return prices.dates[row].item()


def assert_matches_reference(result: BacktestResult, expected: Run, prices: PriceMatrix) -> None:
    want = sorted(expected.trades, key=lambda tr: (tr.entry_row, prices.symbols[tr.column]))
    got = result.trades.to_dicts()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        where = f"{g['symbol']} {g['entry_date']}"
        assert g["symbol"] == prices.symbols[w.column], where
        assert g["direction"] == ("long" if w.side == 1 else "short"), where
        assert g["entry_date"] == day(prices, w.entry_row), where
        assert g["exit_date"] == (None if w.exit_row is None else day(prices, w.exit_row)), where
        assert g["is_open"] == (w.exit_row is None), where
        assert g["exit_reason"] == w.reason, where
        assert g["entry_price"] == pytest.approx(w.entry_price, rel=1e-12), where
        assert g["exit_price"] == pytest.approx(w.exit_price, rel=1e-12), where
        assert g["shares"] == pytest.approx(w.shares, rel=1e-9), where
        assert g["pnl"] == pytest.approx(w.pnl, rel=1e-9, abs=1e-9 * result.start_capital), where
        assert g["fees"] == pytest.approx(w.fees, rel=1e-9), where
    np.testing.assert_allclose(result.equity["equity"].to_numpy(), expected.equity, rtol=1e-9)
    np.testing.assert_allclose(
        result.equity["cash"].to_numpy(), expected.cash, rtol=1e-9, atol=1e-9 * result.start_capital
    )
    assert result.final_equity == pytest.approx(expected.equity[-1], rel=1e-9)


# --- the reference comparison on real bars ---------------------------------------------------

Strategy = Callable[[pl.DataFrame, PriceMatrix], Signals]


def sma(fast: int, slow: int) -> Strategy:
    return lambda bars, prices: sma_cross_signals(bars, prices, fast, slow)


RSI: Strategy = rsi_cross_signals
OPEN, CLOSE = {"execution": "open"}, {"execution": "close"}
LS = {"direction": "longshort"}
PORTFOLIO = {"portfolio": True}

# (strategy, gapped bars?, settings, exit reasons the case must produce)
CASES: dict[str, tuple[Strategy, bool, dict, set[str]]] = {
    "sma10_30-open": (sma(10, 30), False, OPEN, {"signal"}),
    "sma10_30-close": (sma(10, 30), False, CLOSE, {"signal"}),
    "sma20_50-open": (sma(20, 50), False, OPEN, {"signal"}),
    "sma20_50-close": (sma(20, 50), False, CLOSE, {"signal"}),
    "rsi-open": (RSI, False, OPEN, {"signal"}),
    "rsi-close": (RSI, False, CLOSE, {"signal"}),
    "longshort-open": (sma(10, 30), False, {**OPEN, **LS}, {"signal"}),
    "longshort-close-rsi": (RSI, False, {**CLOSE, **LS}, {"signal"}),
    "fixed_fraction": (sma(20, 50), False, {"sizing": "fixed_fraction", "fraction": 0.4}, set()),
    "integer_shares": (sma(10, 30), False, {"integer_shares": True}, set()),
    "integer_shares-longshort-close": (
        RSI,
        False,
        {**CLOSE, **LS, "integer_shares": True},
        set(),
    ),
    "stop_loss-open": (sma(10, 30), False, {"stop_loss": 0.03}, {"stop_loss"}),
    "stop_loss-close": (sma(10, 30), False, {**CLOSE, "stop_loss": 0.03}, {"stop_loss"}),
    "take_profit": (sma(20, 50), False, {"take_profit": 0.08}, {"take_profit"}),
    "trailing_stop": (sma(20, 50), False, {"trailing_stop": 0.05}, {"trailing_stop"}),
    "all_stops-longshort-open": (
        sma(10, 30),
        False,
        {**LS, "stop_loss": 0.05, "take_profit": 0.1, "trailing_stop": 0.04},
        {"stop_loss", "take_profit", "trailing_stop", "signal"},
    ),
    "all_stops-longshort-close": (
        RSI,
        False,
        {**CLOSE, **LS, "stop_loss": 0.04, "take_profit": 0.06, "trailing_stop": 0.05},
        {"stop_loss", "take_profit", "trailing_stop"},
    ),
    "portfolio-equal_weight-max2": (
        sma(10, 30),
        False,
        {**PORTFOLIO, "sizing": "equal_weight", "max_positions": 2},
        set(),
    ),
    "portfolio-equal_weight-close": (
        RSI,
        False,
        {**PORTFOLIO, **CLOSE, "sizing": "equal_weight"},
        set(),
    ),
    "portfolio-all_in": (sma(20, 50), False, PORTFOLIO, set()),
    "portfolio-fixed_fraction-longshort-stops": (
        sma(10, 30),
        False,
        {
            **PORTFOLIO,
            **LS,
            "sizing": "fixed_fraction",
            "fraction": 0.3,
            "stop_loss": 0.05,
            "trailing_stop": 0.06,
        },
        {"stop_loss", "trailing_stop"},
    ),
    "portfolio-margin": (
        sma(10, 30),
        False,
        {**PORTFOLIO, "sizing": "fixed_fraction", "fraction": 0.8, "margin": True},
        set(),
    ),
    "gaps-open": (sma(10, 30), True, OPEN, {"signal"}),
    "gaps-close-longshort": (sma(10, 30), True, {**CLOSE, **LS, "stop_loss": 0.05}, set()),
    "gaps-portfolio": (
        RSI,
        True,
        {**PORTFOLIO, "sizing": "equal_weight", "trailing_stop": 0.05},
        set(),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_engine_matches_the_bar_by_bar_reference(case: str, stock_bars, gapped_bars) -> None:
    strategy, gapped, settings, reasons = CASES[case]
    bars = gapped_bars if gapped else stock_bars
    prices = PriceMatrix.from_bars(bars)
    if gapped:
        assert np.isnan(prices.close).any()
    entries, exits = strategy(bars, prices)
    cfg = BacktestConfig(**settings)

    result = run_backtest(prices, entries, exits, cfg)

    assert_matches_reference(result, reference(prices, entries, exits, cfg), prices)
    assert reasons <= set(result.trades["exit_reason"]), "the case must exercise its rule"


# --- hand-made cases, one rule each ----------------------------------------------------------


def matrix(**columns: list[tuple[float, float, float, float] | None]) -> PriceMatrix:
    """Symbols given as lists of (open, high, low, close) bars, None for no bar, on
    consecutive weekdays from 2024-01-01."""
    n = len(next(iter(columns.values())))
    dates = np.busday_offset("2024-01-01", np.arange(n), roll="forward")
    rows = [
        {
            "symbol": s,
            "date": dates[t].item(),
            "open": b[0],
            "high": b[1],
            "low": b[2],
            "close": b[3],
        }
        for s, bars in columns.items()
        for t, b in enumerate(bars)
        if b is not None
    ]
    prices = PriceMatrix.from_bars(pl.DataFrame(rows))
    assert len(prices.dates) == n
    return prices


def flat(*closes: float) -> list[tuple[float, float, float, float]]:
    return [(c, c, c, c) for c in closes]


def signals(prices: PriceMatrix, **marks: dict[str, list[int]]) -> Signals:
    """``marks[symbol] = {"entry": rows, "exit": rows}``."""
    entries = np.zeros(prices.shape, dtype=bool)
    exits = np.zeros(prices.shape, dtype=bool)
    for symbol, rows in marks.items():
        j = prices.symbols.index(symbol)
        entries[rows.get("entry", []), j] = True
        exits[rows.get("exit", []), j] = True
    return entries, exits


NO_COSTS = {"fees": 0.0, "slippage": 0.0}
BARS = [(10.0, 11.0, 9.5, 10.5), (11.0, 12.0, 10.8, 11.5), (12.0, 12.5, 11.0, 12.2),
        (12.4, 13.0, 12.1, 12.8), (13.0, 13.5, 12.5, 13.2), (13.1, 13.4, 12.9, 13.0)]  # fmt: skip


def test_open_execution_fills_at_the_next_open_with_fees_and_slippage() -> None:
    prices = matrix(A=BARS)
    cfg = BacktestConfig(fees=0.001, slippage=0.0005)
    trade = run_backtest(prices, *signals(prices, A={"entry": [0], "exit": [3]}), cfg).trades.row(
        0, named=True
    )
    shares = 10_000 / (11.0 * 1.0015)
    assert (trade["entry_price"], trade["exit_price"]) == (11.0, 13.0)  # opens of rows 1 and 4
    assert trade["shares"] == pytest.approx(shares, rel=1e-12)
    assert trade["pnl"] == pytest.approx(shares * 13.0 * (1 - 0.0015) - 10_000, rel=1e-12)
    assert trade["fees"] == pytest.approx(shares * (11.0 + 13.0) * 0.0015, rel=1e-12)
    assert trade["return_pct"] == pytest.approx(trade["pnl"] / 10_000 * 100, rel=1e-12)
    assert (trade["entry_date"], trade["exit_date"]) == (day(prices, 1), day(prices, 4))
    assert trade["bars_held"] == 3


def test_close_execution_fills_at_the_same_close() -> None:
    prices = matrix(A=BARS)
    result = run_backtest(
        prices, *signals(prices, A={"entry": [0], "exit": [3]}), config_from(NO_COSTS | CLOSE)
    )
    trade = result.trades.row(0, named=True)
    assert (trade["entry_price"], trade["exit_price"]) == (10.5, 12.8)
    assert result.final_equity == pytest.approx(10_000 * 12.8 / 10.5, rel=1e-12)


def test_a_signal_on_the_last_bar_fills_only_with_close_execution() -> None:
    prices = matrix(A=BARS)
    entries, exits = signals(prices, A={"entry": [5]})
    assert run_backtest(prices, entries, exits, BacktestConfig()).trades.is_empty()
    trade = run_backtest(prices, entries, exits, BacktestConfig(**CLOSE)).trades.row(0, named=True)
    assert trade["is_open"] and trade["exit_reason"] == "end" and trade["bars_held"] == 0


def test_an_order_waits_for_the_symbols_next_bar() -> None:
    prices = matrix(A=BARS, B=[*BARS[:2], None, None, *BARS[4:]])
    # decided at B's close on row 1; rows 2-3 have no B bar → filled at B's open on row 4
    entries, exits = signals(prices, B={"entry": [1]})
    result = run_backtest(prices, entries, exits, BacktestConfig(**NO_COSTS))
    trade = result.trades.filter(pl.col("symbol") == "B").row(0, named=True)
    assert (trade["entry_date"], trade["entry_price"]) == (day(prices, 4), 13.0)
    # with close execution a signal on a row without a bar fills at the next bar's close
    entries, exits = signals(prices, B={"entry": [2]})
    result = run_backtest(prices, entries, exits, BacktestConfig(**NO_COSTS, **CLOSE))
    trade = result.trades.row(0, named=True)
    assert (trade["entry_date"], trade["entry_price"]) == (day(prices, 4), 13.2)


def test_a_symbol_without_a_bar_is_valued_at_its_last_close() -> None:
    prices = matrix(A=BARS, B=[*BARS[:2], None, None, *BARS[4:]])
    entries, exits = signals(prices, B={"entry": [0]})
    cfg = BacktestConfig(**NO_COSTS, portfolio=True)
    result = run_backtest(prices, entries, exits, cfg)
    shares = 10_000 / 11.0
    values = result.symbol_equity.filter(pl.col("symbol") == "B")["equity"].to_list()
    assert values == pytest.approx([0.0, *(shares * c for c in (11.5, 11.5, 11.5, 13.2, 13.0))])


def test_stop_loss_fills_at_its_level_or_at_a_gapped_open() -> None:
    bars = [(100.0, 100, 100, 100), (100.0, 101, 94, 97), (90.0, 91, 85, 88)]
    prices = matrix(A=bars, B=[(100.0, 100, 100, 100), (100.0, 101, 99, 100), (90.0, 91, 85, 88)])
    entries, exits = signals(prices, A={"entry": [0]}, B={"entry": [0]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, stop_loss=0.05)
    trades = run_backtest(prices, entries, exits, cfg).trades.sort("symbol")
    assert trades["exit_reason"].to_list() == ["stop_loss", "stop_loss"]
    assert trades["exit_price"].to_list() == pytest.approx([95.0, 90.0])  # level; gap → open
    assert trades["exit_date"].to_list() == [day(prices, 1), day(prices, 2)]


def test_stops_on_the_entry_bar_count_with_open_execution_only() -> None:
    bars = [(100.0, 100, 100, 100), (100.0, 101, 90, 99), (99.0, 99, 99, 99)]
    prices = matrix(A=bars)
    entries, exits = signals(prices, A={"entry": [0]})
    # open: filled at row 1's open, whose low then goes through the stop
    trade = run_backtest(prices, entries, exits, BacktestConfig(**NO_COSTS, stop_loss=0.05))
    assert trade.trades.row(0, named=True)["exit_date"] == day(prices, 1)
    # close: filled at row 0's close; row 0's range came before the fill
    trade = run_backtest(prices, entries, exits, BacktestConfig(**NO_COSTS, **CLOSE, stop_loss=0.3))
    assert trade.trades.row(0, named=True)["is_open"]


def test_stop_loss_wins_when_take_profit_is_also_hit() -> None:
    prices = matrix(A=[(100.0, 100, 100, 100), (100.0, 120, 80, 100)])
    entries, exits = signals(prices, A={"entry": [0]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, stop_loss=0.1, take_profit=0.1)
    trade = run_backtest(prices, entries, exits, cfg).trades.row(0, named=True)
    assert (trade["exit_reason"], trade["exit_price"]) == ("stop_loss", 90.0)


def test_take_profit_fills_at_its_level_or_at_a_gapped_open() -> None:
    prices = matrix(
        A=[(100.0, 100, 100, 100), (101.0, 111, 100, 105)],
        B=[(100.0, 100, 100, 100), (115.0, 116, 114, 115)],
    )
    entries, exits = signals(prices, A={"entry": [0]}, B={"entry": [0]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, take_profit=0.1)
    trades = run_backtest(prices, entries, exits, cfg).trades.sort("symbol")
    assert trades["exit_reason"].to_list() == ["take_profit", "take_profit"]
    assert trades["exit_price"].to_list() == pytest.approx([110.0, 115.0])


def test_trailing_stop_follows_the_best_close_since_entry() -> None:
    closes = [100.0, 110.0, 120.0, 115.0]
    bars = [(c, c, c, c) for c in closes] + [(112.0, 113.0, 107.0, 108.0)]
    prices = matrix(A=bars)
    entries, exits = signals(prices, A={"entry": [0]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, trailing_stop=0.1)
    trade = run_backtest(prices, entries, exits, cfg).trades.row(0, named=True)
    # best close 120 → level 108, hit by row 4's low of 107
    assert (trade["exit_reason"], trade["exit_price"]) == ("trailing_stop", pytest.approx(108.0))


def test_short_stops_are_mirrored() -> None:
    prices = matrix(A=[(100.0, 100, 100, 100), (100.0, 106, 99, 104), (104.0, 104, 104, 104)])
    entries, exits = signals(prices, A={"exit": [0]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, **LS, stop_loss=0.05)
    result = run_backtest(prices, entries, exits, cfg)
    trade = result.trades.row(0, named=True)
    assert trade["direction"] == "short"
    assert (trade["exit_reason"], trade["exit_price"]) == ("stop_loss", pytest.approx(105.0))
    assert trade["pnl"] == pytest.approx(100 * (100 - 105.0))
    assert result.final_equity == pytest.approx(9_500.0)


def test_after_a_stop_a_new_entry_needs_a_new_signal() -> None:
    bars = [(100.0, 100, 100, 100), (100.0, 100, 90, 92), *flat(95, 96, 97), (98.0, 99, 97, 98)]
    prices = matrix(A=bars)
    entries, exits = signals(prices, A={"entry": [0, 3]})
    trades = run_backtest(
        prices, entries, exits, BacktestConfig(**NO_COSTS, **CLOSE, stop_loss=0.05)
    ).trades
    assert trades["exit_reason"].to_list() == ["stop_loss", "end"]
    assert trades["entry_date"].to_list() == [day(prices, 0), day(prices, 3)]


def test_longshort_flips_on_the_opposite_signal() -> None:
    prices = matrix(A=flat(10, 10, 12, 12, 9, 9))
    entries, exits = signals(prices, A={"entry": [0, 4], "exit": [2]})
    trades = run_backtest(prices, entries, exits, BacktestConfig(**NO_COSTS, **CLOSE, **LS)).trades
    assert trades["direction"].to_list() == ["long", "short", "long"]
    assert trades["exit_price"].to_list()[:2] == [12.0, 9.0]
    assert trades["pnl"].to_list()[:2] == pytest.approx([2_000.0, 12_000 / 12 * 3])


def test_an_entry_and_an_exit_on_the_same_bar_cancel_out() -> None:
    prices = matrix(A=flat(10, 11, 12))
    entries, exits = signals(prices, A={"entry": [0], "exit": [0]})
    assert run_backtest(prices, entries, exits, BacktestConfig(**CLOSE)).trades.is_empty()


def test_equal_weight_takes_same_day_entries_in_symbol_order_up_to_max_positions() -> None:
    prices = matrix(C=flat(10, 10, 10), A=flat(20, 20, 20), B=flat(40, 40, 40))
    marks = {"entry": [0]}
    entries, exits = signals(prices, A=marks, B=marks, C=marks)
    cfg = BacktestConfig(
        **NO_COSTS, **CLOSE, portfolio=True, sizing="equal_weight", max_positions=2
    )
    result = run_backtest(prices, entries, exits, cfg)
    assert result.trades["symbol"].to_list() == ["A", "B"]  # C skipped: two positions open
    assert result.trades["shares"].to_list() == pytest.approx([5_000 / 20, 5_000 / 40])
    assert result.equity["cash"][-1] == pytest.approx(0.0, abs=1e-9)


def test_portfolio_exits_free_cash_before_same_day_entries() -> None:
    prices = matrix(A=flat(10, 10, 20), B=flat(50, 50, 50))
    entries, exits = signals(prices, A={"entry": [0]}, B={"entry": [1]})
    exits[1, 0] = True  # A sold on row 1, and B bought with the proceeds
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, portfolio=True)
    trades = run_backtest(prices, entries, exits, cfg).trades
    assert trades["symbol"].to_list() == ["A", "B"]
    assert trades["shares"][1] == pytest.approx(10_000 / 50)


def test_fixed_fraction_spends_a_share_of_current_equity() -> None:
    prices = matrix(A=flat(10, 20, 20, 20), B=flat(5, 5, 5, 5))
    entries, exits = signals(prices, A={"entry": [0]}, B={"entry": [1]})
    cfg = BacktestConfig(**NO_COSTS, **CLOSE, portfolio=True, sizing="fixed_fraction", fraction=0.5)
    shares = run_backtest(prices, entries, exits, cfg).trades["shares"].to_list()
    # A: 5,000 / 10; then equity is 5,000 + 500 × 20 = 15,000 and B gets 7,500 capped at 5,000
    assert shares == pytest.approx([500.0, 1_000.0])


def test_integer_shares_floor_the_share_count() -> None:
    prices = matrix(A=flat(30, 30, 33))
    entries, exits = signals(prices, A={"entry": [0]})
    result = run_backtest(prices, entries, exits, BacktestConfig(**CLOSE, integer_shares=True))
    assert result.trades["shares"][0] == math.floor(10_000 / (30 * 1.0015)) == 332
    assert result.equity["cash"][-1] == pytest.approx(10_000 - 332 * 30 * 1.0015)


SAFE_CONFIGS = {
    "all_in-open": {},
    "longshort-close": {**CLOSE, **LS, "stop_loss": 0.05},
    "fixed_fraction": {"sizing": "fixed_fraction", "fraction": 0.7},
    "integer": {"integer_shares": True, **LS},
    "portfolio-equal_weight": {**PORTFOLIO, "sizing": "equal_weight"},
    "portfolio-all_in-close": {**PORTFOLIO, **CLOSE},
}
# Not here: portfolio longshort. Covering a short is paid whatever it costs; once a short
# has lost more than the cash not tied up in longs, the cover takes cash below zero
# (docs/backtesting.md) — a real account would get a margin call.


@pytest.mark.parametrize("name", list(SAFE_CONFIGS))
def test_cash_never_goes_negative_without_margin(name: str, stock_prices, sma_signals) -> None:
    cfg = BacktestConfig(**SAFE_CONFIGS[name])
    entries, exits = sma_signals(10, 30)
    accounts = [(stock_prices, entries, exits)]
    if not cfg.portfolio:  # each symbol's own account, not just their sum
        accounts = [
            (stock_prices.select([s]), entries[:, [j]], exits[:, [j]])
            for j, s in enumerate(stock_prices.symbols)
        ]
    for prices, e, x in accounts:
        assert run_backtest(prices, e, x, cfg).equity["cash"].min() >= 0.0


def test_margin_lets_cash_go_negative(stock_prices, sma_signals) -> None:
    cfg = BacktestConfig(portfolio=True, sizing="fixed_fraction", fraction=0.8, margin=True)
    result = run_backtest(stock_prices, *sma_signals(10, 30), cfg)
    assert result.equity["cash"].min() < 0.0


def test_a_position_open_at_the_end_is_reported(stock_prices, sma_signals) -> None:
    result = run_backtest(stock_prices, *sma_signals(10, 30), BacktestConfig())
    still_open = result.trades.filter(pl.col("is_open"))
    assert still_open.height >= 1
    last_close = dict(zip(stock_prices.symbols, stock_prices.close[-1], strict=True))
    for trade in still_open.to_dicts():
        assert trade["exit_date"] is None and trade["exit_reason"] == "end"
        assert trade["exit_price"] == last_close[trade["symbol"]]
        assert trade["bars_held"] == len(stock_prices.dates) - 1 - stock_prices.index_of(
            trade["entry_date"]
        )
    # no exit costs on open positions: the trades' P&L adds up to the equity's change
    assert result.trades["pnl"].sum() == pytest.approx(
        result.final_equity - result.start_capital, rel=1e-9
    )


def test_per_symbol_mode_sums_the_accounts(stock_prices, sma_signals) -> None:
    entries, exits = sma_signals(20, 50)
    result = run_backtest(stock_prices, entries, exits, BacktestConfig())
    assert result.start_capital == 30_000.0
    per_symbol = result.symbol_equity.group_by("date").agg(pl.col("equity").sum()).sort("date")
    np.testing.assert_allclose(per_symbol["equity"], result.equity["equity"], rtol=1e-12)
    for j, symbol in enumerate(stock_prices.symbols):
        alone = run_backtest(
            stock_prices.select([symbol]), entries[:, [j]], exits[:, [j]], BacktestConfig()
        )
        mine = result.symbol_equity.filter(pl.col("symbol") == symbol)["equity"]
        np.testing.assert_array_equal(mine.to_numpy(), alone.equity["equity"].to_numpy())


def test_one_symbol_trades_the_same_in_both_modes(stock_prices, rsi_signals) -> None:
    entries, exits = rsi_signals
    settings = {**LS, "stop_loss": 0.05, "trailing_stop": 0.08}
    one = stock_prices.select(["MSFT"])
    j = stock_prices.symbols.index("MSFT")
    runs = [
        run_backtest(one, entries[:, [j]], exits[:, [j]], BacktestConfig(**settings, portfolio=p))
        for p in (False, True)
    ]
    assert runs[0].trades.equals(runs[1].trades)
    np.testing.assert_array_equal(runs[0].equity["equity"], runs[1].equity["equity"])


def test_drawdown_and_exposure_columns(stock_prices, sma_signals) -> None:
    result = run_backtest(stock_prices, *sma_signals(10, 30), BacktestConfig(portfolio=True))
    equity = result.equity
    assert equity.columns == ["date", "equity", "cash", "exposure", "drawdown"]
    peak = np.maximum.accumulate(equity["equity"].to_numpy())
    np.testing.assert_allclose(equity["drawdown"], equity["equity"].to_numpy() / peak - 1)
    assert equity["drawdown"].max() <= 0.0
    assert equity["exposure"].min() >= 0.0 and equity["exposure"].max() <= 1.0 + 1e-12


@pytest.mark.parametrize("execution", ["open", "close"])
@pytest.mark.parametrize("portfolio", [False, True])
def test_equity_up_to_a_date_does_not_depend_on_later_bars(
    execution: str, portfolio: bool, stock_prices, sma_signals
) -> None:
    entries, exits = sma_signals(10, 30)
    cfg = BacktestConfig(execution=execution, portfolio=portfolio, stop_loss=0.05, **LS)
    full = run_backtest(stock_prices, entries, exits, cfg).equity
    for cut in (60, 200, 377, 600):
        # With execution=open the truncated run's last decisions have no next open to
        # fill at; they would fill on row `cut` of the full run, after the compared span.
        truncated = PriceMatrix(
            dates=stock_prices.dates[:cut],
            symbols=stock_prices.symbols,
            open=stock_prices.open[:cut],
            high=stock_prices.high[:cut],
            low=stock_prices.low[:cut],
            close=stock_prices.close[:cut],
        )
        early = run_backtest(truncated, entries[:cut], exits[:cut], cfg).equity
        assert early.equals(full.head(cut)), f"cut at row {cut}"


# --- inputs ---------------------------------------------------------------------------------


def test_signals_of_the_wrong_shape_are_refused(stock_prices) -> None:
    with pytest.raises(InvalidInputError, match=r"entries has shape \(3, 3\) — expected"):
        run_backtest(stock_prices, np.zeros((3, 3), bool), np.zeros((3, 3), bool), BacktestConfig())


def test_non_boolean_signals_are_refused(stock_prices) -> None:
    values = np.full(stock_prices.shape, 0.5)
    with pytest.raises(InvalidInputError, match="exits must be booleans"):
        run_backtest(stock_prices, np.zeros(stock_prices.shape, bool), values, BacktestConfig())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fees": 1.5}, "invalid backtest setting fees=1.5 — input should be less than 1"),
        ({"cash": 0}, "invalid backtest setting cash=0 — input should be greater than 0"),
        ({"execution": "noon"}, "invalid backtest setting execution='noon' — input should be"),
        ({"stop_los": 0.1}, "unknown backtest setting 'stop_los' — known: cash, fees"),
        ({"sizing": "equal_weight"}, "invalid backtest settings: sizing=equal_weight needs"),
        ({"max_positions": 3}, "invalid backtest settings: max_positions=3 needs portfolio"),
    ],
)
def test_bad_settings_are_one_line_errors(values: dict, message: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        config_from(values)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_price_matrix_from_bars_refuses_duplicates_and_missing_prices(stock_bars) -> None:
    with pytest.raises(InvalidInputError, match="duplicate bar AAPL 2010-01-04"):
        PriceMatrix.from_bars(pl.concat([stock_bars.head(1), stock_bars]))
    holed = stock_bars.with_columns(
        pl.when(pl.col("date") == dt.date(2011, 5, 2)).then(None).otherwise("low").alias("low")
    )
    with pytest.raises(InvalidInputError, match="bar AAPL 2011-05-02 lacks a price"):
        PriceMatrix.from_bars(holed)


def test_price_matrix_slices_by_date(stock_prices) -> None:
    assert stock_prices.symbols == ("AAPL", "GOOG", "MSFT")
    assert stock_prices.index_of(dt.date(2010, 1, 2)) == 0
    assert stock_prices.index_of(dt.date(2013, 1, 1)) == len(stock_prices.dates)
    part = stock_prices.between(dt.date(2011, 1, 1), dt.date(2011, 12, 31))
    assert part.dates[0].item() == dt.date(2011, 1, 3) and part.dates[-1].item() == dt.date(
        2011, 12, 30
    )
    row = stock_prices.index_of(dt.date(2011, 1, 3))
    np.testing.assert_array_equal(part.close[0], stock_prices.close[row])
