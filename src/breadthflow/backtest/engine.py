"""The vectorised backtest: a price matrix and entry/exit signals in, frames out.

:func:`run_backtest` trades every symbol of a :class:`PriceMatrix` on boolean entry and
exit matrices decided at each bar's close, either in one account per symbol or in one
shared account (``config.portfolio``), with the fees, slippage, sizing and stops of a
:class:`BacktestConfig`. The rules — when an order fills, at what price, what it costs,
how stops trigger — are in docs/backtesting.md ("Execution model"); the compiled loops
that apply them are in :mod:`breadthflow.backtest._kernels`.

>>> import datetime as dt, numpy as np, polars as pl
>>> days = [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
>>> bars = pl.DataFrame({"symbol": ["A"] * 4, "date": days, "open": [10.0, 10, 12, 13],
...     "high": [10.0, 10, 12, 13], "low": [10.0, 10, 12, 13], "close": [10.0, 11, 12, 13]})
>>> prices = PriceMatrix.from_bars(bars)
>>> entries = np.array([[True], [False], [False], [False]])
>>> exits = np.array([[False], [True], [False], [False]])
>>> result = run_backtest(prices, entries, exits, BacktestConfig(fees=0, slippage=0))
>>> result.trades.select("entry_price", "exit_price", "pnl").row(0)
(10.0, 12.0, 2000.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from breadthflow.backtest import _kernels as nb
from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.core.errors import InvalidInputError

__all__ = ["EQUITY_COLUMNS", "TRADE_COLUMNS", "BacktestResult", "run_backtest"]

EQUITY_COLUMNS = ("date", "equity", "cash", "exposure", "drawdown")
TRADE_COLUMNS = (
    "symbol", "direction", "entry_date", "entry_price", "exit_date", "exit_price", "shares",
    "pnl", "return_pct", "fees", "bars_held", "is_open", "exit_reason",
)  # fmt: skip


@dataclass(frozen=True)
class BacktestResult:
    """What a backtest produced.

    - ``equity``: one row per date — ``date, equity, cash, exposure`` (gross position value
      / equity) and ``drawdown`` (equity / running peak - 1). In per-symbol mode the sum
      over the symbol accounts (start capital = cash × N).
    - ``symbol_equity``: long ``date, symbol, equity`` — each symbol's account (per-symbol
      mode) or each symbol's signed position value (portfolio mode).
    - ``trades``: one row per round trip (``TRADE_COLUMNS``), sorted by entry date then
      symbol; a position still open at the end has ``is_open`` and ``exit_reason="end"``.
    """

    equity: pl.DataFrame
    symbol_equity: pl.DataFrame
    trades: pl.DataFrame
    start_capital: float
    config: BacktestConfig

    @property
    def final_equity(self) -> float:
        return float(self.equity["equity"][-1])

    @property
    def total_return_pct(self) -> float:
        return (self.final_equity / self.start_capital - 1.0) * 100.0


def kernel_args(config: BacktestConfig) -> tuple[Any, ...]:
    """The configuration as the kernels' scalar arguments, in their order: ``cash0, cost,
    exec_open, longshort, sizing, fraction`` (then the stops and flags, see
    :func:`stop_args`)."""
    return (
        float(config.cash),
        float(config.cost_rate),
        config.execution == "open",
        config.direction == "longshort",
        nb.SIZING_CODES[config.sizing],
        float(config.fraction),
    )


def stop_args(config: BacktestConfig) -> tuple[Any, ...]:
    """``stop_loss, take_profit, trailing, integer, margin`` (NaN for an unset stop)."""

    def level(value: float | None) -> float:
        return np.nan if value is None else float(value)

    return (
        level(config.stop_loss),
        level(config.take_profit),
        level(config.trailing_stop),
        bool(config.integer_shares),
        bool(config.margin),
    )


def run_backtest(
    prices: PriceMatrix, entries: np.ndarray, exits: np.ndarray, config: BacktestConfig
) -> BacktestResult:
    """Backtest ``entries``/``exits`` (bool ``(T, N)``, decided at each bar's close) on
    ``prices`` under ``config``.

    ``direction="long"``: an entry opens a long when flat, an exit closes it.
    ``direction="longshort"``: an entry goes long (covering a short first), an exit goes
    short (selling a long first). An entry and an exit on the same bar cancel out.
    """
    t, n = prices.shape
    if t == 0 or n == 0:
        raise InvalidInputError("no bars to backtest — the price matrix is empty")
    entries = signal_array(entries, prices.shape, "entries")
    exits = signal_array(exits, prices.shape, "exits")
    capacity = int(np.count_nonzero(entries | exits)) + n
    trade_ints = np.zeros((capacity, nb.TRADE_INTS), dtype=np.int64)
    trade_floats = np.zeros((capacity, nb.TRADE_FLOATS))
    if config.portfolio:
        equity, cash, gross = np.empty(t), np.empty(t), np.empty(t)
        values = np.empty((t, n))
        count = nb.simulate_portfolio(
            *_fields(prices), entries, exits, *kernel_args(config),
            int(config.max_positions or 0), *stop_args(config),
            equity, cash, gross, values, trade_ints, trade_floats, True,
        )  # fmt: skip
        start = float(config.cash)
    else:
        per = np.empty((3, n, t))
        count = nb.simulate_accounts(
            *(np.ascontiguousarray(a.T) for a in _fields(prices)),
            np.ascontiguousarray(entries.T), np.ascontiguousarray(exits.T),
            *kernel_args(config), *stop_args(config),
            per[0], per[1], per[2], trade_ints, trade_floats, True,
        )  # fmt: skip
        values = per[0].T
        equity, cash, gross = per[0].sum(axis=0), per[1].sum(axis=0), per[2].sum(axis=0)
        start = float(config.cash) * n
    dates = pl.Series("date", prices.dates).cast(pl.Date)
    return BacktestResult(
        equity=_equity_frame(dates, equity, cash, gross),
        symbol_equity=pl.DataFrame(
            {
                "date": np.repeat(prices.dates, n),
                "symbol": pl.Series(prices.symbols * t, dtype=pl.String),
                "equity": np.ascontiguousarray(values).ravel(),
            }
        ).with_columns(pl.col("date").cast(pl.Date)),
        trades=_trade_frame(prices, trade_ints[:count], trade_floats[:count]),
        start_capital=start,
        config=config,
    )


def signal_array(values: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """``values`` as a C-contiguous bool array of ``shape``; 0/1 numbers are accepted."""
    array = np.asarray(values)
    if array.shape != shape:
        raise InvalidInputError(
            f"{name} has shape {array.shape} — expected {shape} (dates × symbols of the prices)"
        )
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.number) or not np.isin(array, (0, 1)).all():
            raise InvalidInputError(f"{name} must be booleans (or 0/1), got dtype {array.dtype}")
        array = array.astype(bool)
    return np.ascontiguousarray(array)


def _fields(prices: PriceMatrix) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(a, dtype=np.float64)
        for a in (prices.open, prices.high, prices.low, prices.close)
    )


def _equity_frame(
    dates: pl.Series, equity: np.ndarray, cash: np.ndarray, gross: np.ndarray
) -> pl.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.where(equity > 0, gross / equity, np.nan)
        drawdown = equity / np.maximum.accumulate(equity) - 1.0
    return pl.DataFrame(
        {"date": dates, "equity": equity, "cash": cash, "exposure": exposure, "drawdown": drawdown}
    ).with_columns(pl.col("exposure").fill_nan(None))


def _trade_frame(prices: PriceMatrix, ints: np.ndarray, floats: np.ndarray) -> pl.DataFrame:
    last_row = len(prices.dates) - 1
    is_open = ints[:, nb.T_EXIT_ROW] < 0
    exit_rows = np.where(is_open, last_row, ints[:, nb.T_EXIT_ROW])
    entry_rows = ints[:, nb.T_ENTRY_ROW]
    date_values = prices.dates
    reasons = np.array([nb.REASONS[i] for i in range(1, len(nb.REASONS) + 1)], dtype=object)
    frame = pl.DataFrame(
        {
            "symbol": pl.Series(
                np.array(prices.symbols, dtype=object)[ints[:, nb.T_SYMBOL]], dtype=pl.String
            ),
            "direction": pl.Series(
                np.where(ints[:, nb.T_SIDE] > 0, "long", "short"), dtype=pl.String
            ),
            "entry_date": pl.Series(date_values[entry_rows]).cast(pl.Date),
            "entry_price": floats[:, nb.F_ENTRY],
            "exit_date": pl.Series(date_values[exit_rows]).cast(pl.Date),
            "exit_price": floats[:, nb.F_EXIT],
            "shares": floats[:, nb.F_SHARES],
            "pnl": floats[:, nb.F_PNL],
            "return_pct": floats[:, nb.F_PNL] / floats[:, nb.F_BASIS] * 100.0,
            "fees": floats[:, nb.F_FEES],
            "bars_held": (exit_rows - entry_rows).astype(np.int64),
            "is_open": is_open,
            "exit_reason": pl.Series(reasons[ints[:, nb.T_REASON] - 1], dtype=pl.String),
        }
    )
    frame = frame.with_columns(
        pl.when(pl.col("is_open")).then(None).otherwise(pl.col("exit_date")).alias("exit_date")
    )
    return frame.sort("entry_date", "symbol", maintain_order=True)
