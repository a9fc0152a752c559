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

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl

from breadthflow.backtest import _kernels as nb
from breadthflow.backtest import metrics
from breadthflow.backtest._frames import frame, series, strings
from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.metrics import (
    TRADING_DAYS,
    Stat,
    TradeArrays,
    benchmark_arrays,
)
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.core.errors import InvalidInputError

__all__ = [
    "EQUITY_COLUMNS",
    "TRADE_COLUMNS",
    "BacktestResult",
    "ResultArrays",
    "run_backtest",
]

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
    - ``trades``: one row per round trip (``TRADE_COLUMNS``), sorted by entry date then
      symbol; a position still open at the end has ``is_open`` and ``exit_reason="end"``.
    - ``symbol_equity`` (built on first access): long ``date, symbol, equity`` — each
      symbol's account (per-symbol mode) or each symbol's signed position value
      (portfolio mode).
    - ``arrays``: the same numbers as NumPy arrays, for :meth:`stats` and
      ``symbol_equity``.
    """

    equity: pl.DataFrame
    trades: pl.DataFrame
    start_capital: float
    config: BacktestConfig
    arrays: ResultArrays = field(repr=False, compare=False)

    @cached_property
    def symbol_equity(self) -> pl.DataFrame:
        a = self.arrays
        t, n = a.values.shape
        if n == 1:  # the account's curve is the total one
            return frame(
                [
                    self.equity.get_column("date"),
                    _repeat("symbol", a.symbols[0], t),
                    self.equity.get_column("equity"),
                ]
            )
        return frame(
            [
                _date_series("date", np.repeat(a.days, n)),
                pl.Series("symbol", a.symbols * t, dtype=pl.String),
                series("equity", np.ascontiguousarray(a.values).ravel()),
            ]
        )

    @property
    def final_equity(self) -> float:
        return float(self.equity["equity"][-1])

    @property
    def total_return_pct(self) -> float:
        return (self.final_equity / self.start_capital - 1.0) * 100.0

    def stats(
        self,
        benchmark: pl.DataFrame | None = None,
        risk_free: float = 0.0,
        periods_per_year: int = TRADING_DAYS,
    ) -> dict[str, Stat]:
        """The statistics of this run: ``compute_stats(equity, trades, benchmark,
        exposure=equity["exposure"], …)``, computed from the engine's arrays instead of
        reading the frames back — the same numbers, a fraction of the time.

        ``benchmark``: ``date, close`` as for
        :func:`~breadthflow.backtest.metrics.compute_stats`.
        """
        a = self.arrays
        bench = None if benchmark is None else benchmark_arrays(benchmark)
        # The engine's arrays are already what stats_from_arrays would check them to be.
        return metrics._stats(
            a.days, a.equity, a.trades, bench, a.exposure, a.drawdown, risk_free, periods_per_year
        )


@dataclass(slots=True)
class ResultArrays:
    """The arrays behind a :class:`BacktestResult`'s frames: ``days`` (whole days since
    1970-01-01), ``equity``, ``exposure`` (NaN where the equity is not positive) and
    ``drawdown`` per date; ``values`` ``(T, N)`` per symbol and date, for ``symbols``;
    the trades in frame order."""

    days: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray
    drawdown: np.ndarray
    values: np.ndarray
    symbols: tuple[str, ...]
    trades: TradeArrays


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
        if n == 1:
            equity, cash, gross = per[0, 0], per[1, 0], per[2, 0]
        else:
            equity, cash, gross = per[0].sum(axis=0), per[1].sum(axis=0), per[2].sum(axis=0)
        start = float(config.cash) * n
    return _result(prices, equity, cash, gross, values, trade_ints[:count],
                   trade_floats[:count], start, config)  # fmt: skip


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


def _result(
    prices: PriceMatrix,
    equity: np.ndarray,
    cash: np.ndarray,
    gross: np.ndarray,
    values: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    start: float,
    config: BacktestConfig,
) -> BacktestResult:
    """The result frames, built once from the kernel's arrays (Series straight from NumPy:
    per-call Polars overhead, not the data, dominates a single-symbol run)."""
    t = values.shape[0]
    day_numbers = _day_numbers(prices)
    dates = _date_series("date", day_numbers)
    exposure, drawdown = np.empty(t), np.empty(t)
    nb.curve_columns(equity, gross, exposure, drawdown)
    equity_frame = frame(
        [
            dates,
            series("equity", equity),
            series("cash", cash),
            series("exposure", exposure, True),
            series("drawdown", drawdown),
        ]
    )
    trades, trade_arrays = _trades(prices, ints, floats)
    arrays = ResultArrays(
        day_numbers, equity, exposure, drawdown, values, prices.symbols, trade_arrays
    )
    return BacktestResult(equity_frame, trades, start, config, arrays)


_DIRECTIONS = np.array(["short", "long"], dtype=object)
_REASONS = np.array([nb.REASONS[i] for i in range(1, len(nb.REASONS) + 1)], dtype=object)


def _day_numbers(prices: PriceMatrix) -> np.ndarray:
    return np.asarray(prices.dates, dtype="datetime64[D]").view(np.int64)


def _repeat(name: str, value: str, count: int) -> pl.Series:
    return strings(name, [value]).new_from_index(0, count)


def _strings(name: str, table: np.ndarray, codes: np.ndarray) -> pl.Series:
    return strings(name, table[codes].tolist())


def _date_series(name: str, day_numbers: np.ndarray) -> pl.Series:
    # From 32-bit day numbers: a fraction of the cost of converting datetime64[D].
    return series(name, day_numbers.astype(np.int32)).cast(pl.Date)


def _trades(
    prices: PriceMatrix, ints: np.ndarray, floats: np.ndarray
) -> tuple[pl.DataFrame, TradeArrays]:
    """The trade frame, sorted by entry date then symbol (the kernels write them symbol by
    symbol), and the arrays stats need, in the same order."""
    n_symbols = len(prices.symbols)
    rank = np.zeros(n_symbols, dtype=np.int64)
    if n_symbols > 1:
        rank[sorted(range(n_symbols), key=prices.symbols.__getitem__)] = np.arange(n_symbols)
    count = len(ints)
    cols = np.empty((nb.TRADE_INT_COLUMNS, count), dtype=np.int64)
    values = np.empty((nb.TRADE_FLOAT_COLUMNS, count))
    is_open = np.empty(count, dtype=np.bool_)
    nb.trade_columns(ints, floats, rank, _day_numbers(prices), cols, values, is_open)
    exit_day = values[nb.X_EXIT_DAY]
    if is_open.any():  # no exit date: null (through NaN, the cheapest way to a null)
        exit_dates = series("exit_date", exit_day, True).cast(pl.Int32).cast(pl.Date)
    else:
        exit_dates = _date_series("exit_date", cols[nb.C_EXIT_DAY])
    if n_symbols == 1:
        symbols = _repeat("symbol", prices.symbols[0], count)
    else:
        symbols = _strings("symbol", np.array(prices.symbols, dtype=object), cols[nb.C_SYMBOL])
    pnl, return_pct, fees = values[nb.X_PNL], values[nb.X_RETURN_PCT], values[nb.X_FEES]
    trades = frame(
        [
            symbols,
            _strings("direction", _DIRECTIONS, cols[nb.C_LONG]),
            _date_series("entry_date", cols[nb.C_ENTRY_DAY]),
            series("entry_price", values[nb.X_ENTRY_PRICE]),
            exit_dates,
            series("exit_price", values[nb.X_EXIT_PRICE]),
            series("shares", values[nb.X_SHARES]),
            series("pnl", pnl),
            series("return_pct", return_pct),
            series("fees", fees),
            series("bars_held", cols[nb.C_BARS]),
            series("is_open", is_open),
            _strings("exit_reason", _REASONS, cols[nb.C_REASON]),
        ]
    )  # fmt: skip
    arrays = TradeArrays(
        pnl=pnl,
        return_pct=return_pct,
        fees=fees,
        is_open=is_open,
        bars_held=values[nb.X_BARS],
        entry_day=cols[nb.C_ENTRY_DAY],
        exit_day=cols[nb.C_EXIT_DAY],
        exit_known=~is_open,
    )
    return trades, arrays
