"""The engine agrees with vectorbt, the field's reference vectorised backtester.

vectorbt (a dev dependency, so these run in CI like any other test) fills signals at the
bar's close and charges fees on traded value as we do; its slippage instead moves the fill
price, so slippage is 0 here. Per symbol: total return, trade count (open trades
included) and maximum drawdown must agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import run_backtest
from breadthflow.backtest.prices import PriceMatrix

FEES = 0.001
CASH = 10_000.0


def vectorbt_portfolio(prices: PriceMatrix, entries: np.ndarray, exits: np.ndarray):
    index = pd.DatetimeIndex(prices.dates)
    frame = lambda a: pd.DataFrame(a, index=index, columns=list(prices.symbols))  # noqa: E731
    return vbt.Portfolio.from_signals(
        frame(prices.close), frame(entries), frame(exits),
        fees=FEES, init_cash=CASH, size=np.inf, direction="longonly", freq="1D",
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["sma10_30", "sma20_50", "rsi"])
def test_per_symbol_results_agree_with_vectorbt(
    strategy: str, stock_prices, sma_signals, rsi_signals
) -> None:
    entries, exits = {
        "sma10_30": lambda: sma_signals(10, 30),
        "sma20_50": lambda: sma_signals(20, 50),
        "rsi": lambda: rsi_signals,
    }[strategy]()
    cfg = BacktestConfig(cash=CASH, fees=FEES, slippage=0.0, execution="close")

    ours = run_backtest(stock_prices, entries, exits, cfg)
    theirs = vectorbt_portfolio(stock_prices, entries, exits)

    total_return = theirs.total_return()
    max_drawdown = theirs.max_drawdown()
    trade_count = theirs.trades.count()
    for symbol in stock_prices.symbols:
        curve = ours.symbol_equity.filter(symbol=symbol)["equity"].to_numpy()
        drawdown = (curve / np.maximum.accumulate(curve) - 1).min()
        assert curve[-1] / CASH - 1 == pytest.approx(total_return[symbol], rel=1e-9, abs=1e-12)
        assert drawdown == pytest.approx(max_drawdown[symbol], rel=1e-9, abs=1e-12)
        assert ours.trades.filter(symbol=symbol).height == trade_count[symbol] > 0
