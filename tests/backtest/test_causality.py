"""No look-ahead in backtests: every registered strategy's equity curve up to date T is
the same whether or not the bars after T exist.

The signals causality test (tests/signals/test_causality.py) extended through the engine:
signals → orders → fills → equity. Fills happen at the next bar's open, so a decision at
T's close shows up after T and the curves agree up to T inclusive. Stops are on, so their
intrabar checks are covered too.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import BacktestResult
from breadthflow.backtest.orders import backtest_signals
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.data.providers.sample import load_sample
from breadthflow.signals import STRATEGIES, Level, MarketData, load_strategy_config

CUTS = [dt.date(2010, 3, 10), dt.date(2010, 7, 30)]
# model_prediction signals only with a trained model: tests/pipelines/test_training.py
# checks its causality with one.
NAMES = sorted(n for n in STRATEGIES if not getattr(STRATEGIES[n], "needs_model", False))
CONFIG = BacktestConfig(stop_loss=0.08, trailing_stop=0.15, fees=0.001, slippage=0.0005)


@pytest.fixture(scope="module")
def market_data() -> MarketData:
    return MarketData(load_sample(), "sample", hl_window=50)


@pytest.fixture(scope="module")
def prices(market_data: MarketData) -> PriceMatrix:
    return PriceMatrix.from_bars(market_data.bars)


def backtest(name: str, data: MarketData, prices: PriceMatrix) -> BacktestResult:
    """The universe (the matrix's symbols) is fixed up front; only the bars are cut."""
    strategy = load_strategy_config().build(name)
    market = data.universe if strategy.level is Level.MARKET else None
    last = data.bars["date"].max()
    window = prices.between(prices.dates[0].astype(dt.date), last)
    return backtest_signals(strategy.generate(data), window, CONFIG, market)


@pytest.fixture(scope="module")
def full_runs(market_data: MarketData, prices: PriceMatrix) -> dict[str, BacktestResult]:
    return {name: backtest(name, market_data, prices) for name in NAMES}


@pytest.mark.parametrize("cut", CUTS, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_equity_up_to_a_date_does_not_depend_on_later_bars(
    name: str,
    cut: dt.date,
    market_data: MarketData,
    prices: PriceMatrix,
    full_runs: dict[str, BacktestResult],
) -> None:
    full = full_runs[name]
    known_then = backtest(name, market_data.truncated(cut), prices)

    upto = pl.col("date") <= cut
    assert known_then.equity["date"].max() == cut
    assert_frame_equal(known_then.equity, full.equity.filter(upto))
    assert_frame_equal(known_then.symbol_equity, full.symbol_equity.filter(upto))
    closed = pl.col("exit_date") <= cut
    assert_frame_equal(known_then.trades.filter(closed), full.trades.filter(closed))


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_trades_before_the_last_cut(
    name: str, full_runs: dict[str, BacktestResult]
) -> None:
    trades = full_runs[name].trades
    assert trades.filter(pl.col("entry_date") <= CUTS[-1]).height > 0
