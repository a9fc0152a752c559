"""From stored-style signal rows to the engine's entry/exit matrices, and the benchmark.

Pure: frames and arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import BacktestResult, run_backtest
from breadthflow.backtest.prices import PriceMatrix


def orders_from_signals(
    signals: pl.DataFrame, prices: PriceMatrix, market: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Entry/exit matrices ``(T, N)`` for :func:`~breadthflow.backtest.engine.run_backtest`.

    A ``BUY`` row marks an entry, a ``SELL`` row an exit, on its (date, symbol) cell; ``HOLD``
    changes nothing. A row whose symbol is ``market`` (a market-level strategy's universe
    name) applies to every symbol. Rows dated outside ``prices`` or naming a symbol it does
    not hold are ignored.
    """
    n_days, n_symbols = prices.close.shape
    entries = np.zeros((n_days, n_symbols), dtype=bool)
    exits = np.zeros((n_days, n_symbols), dtype=bool)
    if signals.height == 0 or n_days == 0:
        return entries, exits
    acting = signals.filter(pl.col("signal_type").is_in(["BUY", "SELL"]))
    days = acting["date"].cast(pl.Date).to_numpy().astype("datetime64[D]")
    row = np.searchsorted(prices.dates, days)
    on_a_bar = (row < n_days) & (prices.dates[np.minimum(row, n_days - 1)] == days)
    buy = (acting["signal_type"] == "BUY").to_numpy()
    symbols = acting["symbol"].to_list()
    column = {s: i for i, s in enumerate(prices.symbols)}
    for i in np.flatnonzero(on_a_bar):
        target = entries if buy[i] else exits
        if market is not None and symbols[i] == market:
            target[row[i], :] = True
        elif symbols[i] in column:
            target[row[i], column[symbols[i]]] = True
    return entries, exits


def backtest_signals(
    signals: pl.DataFrame, prices: PriceMatrix, config: BacktestConfig, market: str | None = None
) -> BacktestResult:
    """Trade a strategy's signal rows on ``prices``.

    With ``market`` (a market-level strategy's universe name) the signals decide exposure
    to every symbol, so the run is one account split equally (``portfolio``,
    ``equal_weight``) whatever ``config`` says about accounts.
    """
    entries, exits = orders_from_signals(signals, prices, market)
    if market is not None and not config.portfolio:
        config = config.model_copy(update={"portfolio": True, "sizing": "equal_weight"})
    return run_backtest(prices, entries, exits, config)


def equal_weight_benchmark(prices: PriceMatrix, capital: float) -> pl.DataFrame:
    """Buy and hold of every symbol, ``capital / N`` each at its first close, no costs;
    a symbol without a bar on a date is valued at its last close. Columns ``date, equity``."""
    close = prices.close
    n_days, n_symbols = close.shape
    if n_days == 0 or n_symbols == 0:
        return pl.DataFrame(
            {"date": [], "equity": []}, schema={"date": pl.Date, "equity": pl.Float64}
        )
    filled = _forward_fill(close)
    first = np.array(
        [filled[np.flatnonzero(~np.isnan(filled[:, j]))[0], j] if np.any(~np.isnan(filled[:, j]))
         else np.nan for j in range(n_symbols)]
    )  # fmt: skip
    held = ~np.isnan(first)
    shares = np.where(held, capital / max(int(held.sum()), 1) / np.where(held, first, 1.0), 0.0)
    # Before a symbol's first bar its capital waits as cash.
    value = np.where(np.isnan(filled), (capital / max(int(held.sum()), 1)) * held, filled * shares)
    return pl.DataFrame({"date": prices.dates, "equity": value.sum(axis=1)}).with_columns(
        pl.col("date").cast(pl.Date)
    )


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """Carry each column's last non-NaN value forward (NaN before the first)."""
    index = np.where(~np.isnan(values), np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = values[index, np.arange(values.shape[1])]
    started = np.maximum.accumulate(~np.isnan(values), axis=0)
    return np.where(started, filled, np.nan)
