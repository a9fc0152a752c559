"""The fused SMA-cross sweep gives exactly what run_backtest gives on the same crosses."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import run_backtest
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.backtest.sweep import (
    _FRAME_ROW,
    SWEEP_COLUMNS,
    estimate_memory,
    sma_cross_sweep,
)
from breadthflow.backtest.sweep import sma_cross_signals as compiled_crosses
from breadthflow.core.errors import InvalidInputError
from tests.backtest.conftest import sma_cross_signals

PAIRS = [(5, 20), (10, 30), (20, 50), (3, 7), (50, 200)]
CONFIGS = {
    "default": {},
    "close": {"execution": "close", "fees": 0.002, "slippage": 0.0},
    "longshort-stops": {
        "direction": "longshort",
        "stop_loss": 0.05,
        "take_profit": 0.12,
        "trailing_stop": 0.06,
    },
    "fixed_fraction-integer": {"sizing": "fixed_fraction", "fraction": 0.5, "integer_shares": True},
}


def account_stats(
    prices: PriceMatrix, signals: tuple[np.ndarray, np.ndarray], cfg: BacktestConfig, symbol: str
) -> dict:
    """The sweep's statistics, computed with NumPy from run_backtest's account for ``symbol``."""
    j = prices.symbols.index(symbol)
    alone = run_backtest(prices.select([symbol]), signals[0][:, [j]], signals[1][:, [j]], cfg)
    curve = alone.equity["equity"].to_numpy()
    gross = np.abs(curve - alone.equity["cash"].to_numpy())  # equity = cash ± position value
    returns = curve[1:] / curve[:-1] - 1
    std = returns.std(ddof=1)
    return {
        "total_return_pct": (curve[-1] / cfg.cash - 1) * 100,
        "n_trades": alone.trades.height,
        "max_drawdown_pct": (curve / np.maximum.accumulate(curve) - 1).min() * 100,
        "sharpe": returns.mean() / std * math.sqrt(252) if std > 0 else None,
        "final_equity": curve[-1],
        "exposure_pct": (gross / curve).mean() * 100,
    }


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sweep_equals_run_backtest_per_pair_and_symbol(name: str, stock_bars, stock_prices) -> None:
    cfg = BacktestConfig(**CONFIGS[name])
    fast, slow = zip(*PAIRS, strict=True)
    calls: list[tuple[int, int]] = []

    table = sma_cross_sweep(
        stock_prices, fast, slow, cfg, chunk=2, progress=lambda d, t: calls.append((d, t))
    )

    assert table.columns == list(SWEEP_COLUMNS)
    assert table.height == len(PAIRS) * len(stock_prices.symbols)
    assert calls == [(2, 5), (4, 5), (5, 5)]
    for f, s in PAIRS:
        signals = sma_cross_signals(stock_bars, stock_prices, f, s)
        together = run_backtest(stock_prices, *signals, cfg)
        for symbol in stock_prices.symbols:
            got = table.filter(fast=f, slow=s, symbol=symbol).row(0, named=True)
            want = account_stats(stock_prices, signals, cfg, symbol)
            assert want["n_trades"] == together.trades.filter(symbol=symbol).height
            where = f"{f}/{s} {symbol}"
            assert got["n_trades"] == want["n_trades"], where
            for key in ("total_return_pct", "max_drawdown_pct", "final_equity", "exposure_pct"):
                assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), (where, key)
            if want["sharpe"] is None:
                assert got["sharpe"] is None, where
            else:
                assert got["sharpe"] == pytest.approx(want["sharpe"], rel=1e-9), where


def test_sweep_handles_symbols_with_missing_bars(gapped_bars) -> None:
    prices = PriceMatrix.from_bars(gapped_bars)
    cfg = BacktestConfig()
    table = sma_cross_sweep(prices, [10], [30], cfg)
    result = run_backtest(prices, *sma_cross_signals(gapped_bars, prices, 10, 30), cfg)
    final = result.symbol_equity.filter(pl.col("date") == pl.col("date").max())
    np.testing.assert_allclose(
        table.sort("symbol")["final_equity"], final.sort("symbol")["equity"], rtol=1e-9
    )
    assert table["n_trades"].to_list() == [
        result.trades.filter(symbol=s).height for s in prices.symbols
    ]


def test_an_idle_account_has_no_sharpe(stock_prices) -> None:
    # a 600-bar slow SMA on 754 bars: a few crosses at most; 700 bars: none at all
    table = sma_cross_sweep(stock_prices, [5], [753], BacktestConfig())
    assert table["n_trades"].to_list() == [0, 0, 0]
    assert table["sharpe"].null_count() == 3
    assert table["total_return_pct"].to_list() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("fast", "slow", "message"),
    [
        ([10, 30], [30, 30], "invalid pair 1: fast=30 must be shorter than slow=30"),
        ([50], [20], "invalid pair 0: fast=50 must be shorter than slow=20"),
        ([0], [20], "invalid fast SMA window 0 in pair 0 — expected a whole number of bars >= 1"),
        ([5, 10], [20], "2 fast and 1 slow windows — pass one slow window per fast one"),
    ],
)
def test_bad_pairs_are_one_line_errors(stock_prices, fast, slow, message) -> None:
    with pytest.raises(InvalidInputError) as err:
        sma_cross_sweep(stock_prices, fast, slow, BacktestConfig())
    assert str(err.value) == message


def test_portfolio_mode_is_refused(stock_prices) -> None:
    with pytest.raises(InvalidInputError, match="set portfolio=false"):
        sma_cross_sweep(stock_prices, [5], [20], BacktestConfig(portfolio=True))


def test_a_chunk_over_the_memory_limit_is_refused_with_advice(stock_prices) -> None:
    fast, slow = list(range(1, 201)), list(range(201, 401))
    # room for every result row, but for the kernel's statistics of only 50 pairs at a time
    limit = estimate_memory(754, 3, 50) + 150 * 3 * _FRAME_ROW
    with pytest.raises(InvalidInputError) as err:
        sma_cross_sweep(stock_prices, fast, slow, BacktestConfig(), chunk=200, memory_limit=limit)
    message = str(err.value)
    assert message.startswith("chunk=200 pairs × 3 symbols needs about")
    suggested = int(message.rsplit("pass chunk=", 1)[1].split()[0].replace(",", ""))
    assert 1 <= suggested < 200
    # the advice works
    sma_cross_sweep(stock_prices, fast, slow, BacktestConfig(), chunk=suggested, memory_limit=limit)


def test_a_sweep_whose_results_cannot_fit_is_refused_with_advice(stock_prices) -> None:
    limit = estimate_memory(754, 3, 0) + 10 * 3 * 100
    with pytest.raises(InvalidInputError, match="split the pairs into calls of at most"):
        sma_cross_sweep(stock_prices, [5] * 1000, [20] * 1000, BacktestConfig(), memory_limit=limit)


def test_memory_estimate_for_the_benchmark_size_is_a_few_hundred_mb_at_most() -> None:
    estimate = estimate_memory(2_520, 500, 100)
    assert 40 * 1024**2 < estimate < 300 * 1024**2
    assert estimate_memory(2_520, 500, 200) > estimate


@pytest.mark.parametrize(("fast", "slow"), [(5, 20), (10, 30), (50, 200)])
@pytest.mark.parametrize("gapped", [False, True], ids=["full", "gapped"])
def test_compiled_crosses_are_the_strategys_and_the_sweeps(
    fast: int, slow: int, gapped: bool, stock_bars, gapped_bars
) -> None:
    """``sma_cross_signals`` marks the bars the house SMA/cross expressions mark (per symbol,
    over its own bars), and backtesting them gives the sweep's row."""
    bars = gapped_bars if gapped else stock_bars
    prices = PriceMatrix.from_bars(bars)
    entries, exits = compiled_crosses(prices, fast, slow)
    want_entries, want_exits = sma_cross_signals(bars, prices, fast, slow)
    assert entries.any() and exits.any()
    np.testing.assert_array_equal(entries, want_entries)
    np.testing.assert_array_equal(exits, want_exits)
    cfg = BacktestConfig(direction="longshort", execution="close")
    result = run_backtest(prices, entries, exits, cfg)
    table = sma_cross_sweep(prices, [fast], [slow], cfg)
    final = result.symbol_equity.filter(pl.col("date") == pl.col("date").max()).sort("symbol")
    np.testing.assert_allclose(table.sort("symbol")["final_equity"], final["equity"], rtol=1e-12)


def test_compiled_crosses_refuse_a_bad_pair(stock_prices) -> None:
    with pytest.raises(InvalidInputError, match="fast=30 must be shorter than slow=10"):
        compiled_crosses(stock_prices, 30, 10)
