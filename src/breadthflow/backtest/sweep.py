"""Parameter sweeps: many SMA-cross backtests of many symbols in one compiled pass.

:func:`sma_cross_sweep` backtests every ``(fast, slow)`` pair on every symbol of a
:class:`PriceMatrix`, each symbol in its own account, and returns one row of statistics
per (pair, symbol). A fused kernel computes, for each (pair, symbol), the two SMAs from
prefix sums, their crosses and the account simulation in one pass over the symbol's bars,
accumulating the statistics on the way — no signal matrix or equity curve is ever
materialised for the whole grid, so memory is the prices plus the result rows. Pairs are
processed in chunks (progress is reported after each); symbols run in parallel.

The simulation is the one :func:`~breadthflow.backtest.engine.run_backtest` uses, so a row
equals ``run_backtest`` on the same crosses (the tests check it).

>>> import datetime as dt
>>> from breadthflow.data.providers.synthetic import generate_bars
>>> prices = PriceMatrix.from_bars(generate_bars(["SYN00001"], "2020-01-01", "2020-12-31"))
>>> table = sma_cross_sweep(prices, [5, 10], [20, 40], BacktestConfig())
>>> table.select("fast", "slow", "symbol").rows()
[(5, 20, 'SYN00001'), (10, 40, 'SYN00001')]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from breadthflow.backtest import _kernels as nb
from breadthflow.backtest.config import BacktestConfig
from breadthflow.backtest.engine import kernel_args, stop_args
from breadthflow.backtest.prices import PriceMatrix
from breadthflow.core.errors import InvalidInputError

__all__ = [
    "MEMORY_LIMIT",
    "SWEEP_COLUMNS",
    "estimate_memory",
    "sma_cross_signals",
    "sma_cross_sweep",
]

SWEEP_COLUMNS = (
    "fast", "slow", "symbol", "total_return_pct", "n_trades", "max_drawdown_pct", "sharpe",
    "final_equity", "exposure_pct",
)  # fmt: skip
# Refuse a sweep whose estimated peak memory is above this (bytes); callers may pass
# their own ``memory_limit``.
MEMORY_LIMIT = 4 * 1024**3
TRADING_DAYS = 252
# Bytes per result row: the kernel's statistics (7 float64) plus the frame's columns
# (fast, slow, n_trades int64; five float64; a short symbol string with its offset).
_KERNEL_ROW = nb.STAT_FIELDS * 8
_FRAME_ROW = 3 * 8 + 5 * 8 + 24
# Chunks aim at this much kernel output, and at about this many progress steps.
_CHUNK_TARGET = 64 * 1024**2
_PROGRESS_STEPS = 20


def estimate_memory(n_days: int, n_symbols: int, n_pairs: int) -> int:
    """Bytes a sweep of ``n_pairs`` pairs in one chunk needs on top of the price matrix:
    the kernel's copies of the prices, per-thread scratch, the kernel's statistics and the
    result frame.

    >>> estimate_memory(2_520, 500, 100) < 100 * 1024**2
    True
    """
    prices = 4 * n_days * n_symbols * 8  # (N, T) copies of open, high, low, close
    threads = max(1, _threads())
    scratch = threads * n_days * (8 + 2 + 2 * 8)  # bar rows, entries/exits, prefix sums
    results = n_pairs * n_symbols * (_KERNEL_ROW + _FRAME_ROW)
    return prices + scratch + results


def sma_cross_sweep(
    prices: PriceMatrix,
    fast: Sequence[int],
    slow: Sequence[int],
    config: BacktestConfig,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    memory_limit: int | None = None,
) -> pl.DataFrame:
    """Backtest the SMA cross for every pair ``(fast[i], slow[i])`` on every symbol, each
    symbol in its own account (``config.portfolio`` must be false).

    Entry when SMA(fast) of the close crosses above SMA(slow) — above now, at or below on
    the previous bar, both defined; a difference within 1e-9 of the slow SMA is a tie, not
    above — and exit when it crosses below. Returns one row per (pair, symbol), pairs in
    the order given, symbols in the matrix's order, with the columns ``SWEEP_COLUMNS``:

    - ``total_return_pct``: final equity / cash - 1, in %;
    - ``n_trades``: round trips, including one still open at the end;
    - ``max_drawdown_pct``: the deepest equity / running peak - 1, in % (<= 0);
    - ``sharpe``: mean / standard deviation (ddof 1) of the daily equity returns over every
      date of the matrix, × sqrt(252); null when the equity never changed;
    - ``exposure_pct``: the mean over the dates of gross position value / equity, in %.

    ``chunk`` is the number of pairs per kernel call (default: from the memory estimate);
    ``progress(done, total)`` is called after each chunk. A sweep whose estimated memory
    (:func:`estimate_memory`) is above ``memory_limit`` (default :data:`MEMORY_LIMIT`)
    raises :class:`InvalidInputError` saying how to chunk.
    """
    fast_arr, slow_arr = _pairs(fast, slow)
    if config.portfolio:
        raise InvalidInputError(
            "sma_cross_sweep backtests each symbol in its own account — set portfolio=false"
        )
    n_days, n_symbols = prices.shape
    n_pairs = len(fast_arr)
    limit = MEMORY_LIMIT if memory_limit is None else int(memory_limit)
    chunk = _chunk(n_days, n_symbols, n_pairs, chunk, limit)

    exec_open = config.execution == "open"
    has_stops = any(
        v is not None for v in (config.stop_loss, config.take_profit, config.trailing_stop)
    )
    close = np.ascontiguousarray(prices.close.T, dtype=np.float64)
    # Only the fields the rules read are copied; the others alias the closes.
    opens = (
        np.ascontiguousarray(prices.open.T, dtype=np.float64) if exec_open or has_stops else close
    )
    highs = np.ascontiguousarray(prices.high.T, dtype=np.float64) if has_stops else close
    lows = np.ascontiguousarray(prices.low.T, dtype=np.float64) if has_stops else close
    args = (*kernel_args(config), *stop_args(config))

    frames = []
    for begin in range(0, n_pairs, chunk):
        f, s = fast_arr[begin : begin + chunk], slow_arr[begin : begin + chunk]
        out = np.empty((len(f), n_symbols, nb.STAT_FIELDS))
        nb.sweep_sma_cross(opens, highs, lows, close, f, s, *args, out, False)
        frames.append(_frame(out, f, s, prices.symbols, float(config.cash), n_days))
        if progress is not None:
            progress(begin + len(f), n_pairs)
    if not frames:
        return pl.DataFrame(schema=_schema())
    return pl.concat(frames, rechunk=True)


def sma_cross_signals(prices: PriceMatrix, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry/exit matrices ``(T, N)`` of one SMA cross, for
    :func:`~breadthflow.backtest.engine.run_backtest`: exactly the crosses
    :func:`sma_cross_sweep` trades for the pair (the same compiled code: SMAs over each
    symbol's own bars from compensated prefix sums, ties within 1e-9 of the other SMA).

    >>> import datetime as dt
    >>> from breadthflow.data.providers.synthetic import generate_bars
    >>> prices = PriceMatrix.from_bars(generate_bars(["SYN00001"], "2020-01-01", "2020-12-31"))
    >>> entries, exits = sma_cross_signals(prices, 5, 20)
    >>> entries.shape == prices.shape, bool(entries[:20].any())
    (True, False)
    """
    f, s = _pairs([fast], [slow])
    close = np.ascontiguousarray(prices.close.T, dtype=np.float64)
    entries = np.zeros(close.shape, dtype=np.bool_)
    exits = np.zeros(close.shape, dtype=np.bool_)
    nb.sma_cross_marks(close, f[0], s[0], entries, exits)
    return entries.T, exits.T


def _pairs(fast: Sequence[int], slow: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    fast, slow = list(fast), list(slow)
    if len(fast) != len(slow):
        raise InvalidInputError(
            f"{len(fast)} fast and {len(slow)} slow windows — pass one slow window per fast one"
        )
    for i, (f, s) in enumerate(zip(fast, slow, strict=True)):
        for name, value, least in (("fast", f, 1), ("slow", s, 2)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise InvalidInputError(
                    f"invalid {name} SMA window {value!r} in pair {i} — expected a whole "
                    f"number of bars >= {least}"
                )
        if f >= s:
            raise InvalidInputError(f"invalid pair {i}: fast={f} must be shorter than slow={s}")
    return np.asarray(fast, dtype=np.int64), np.asarray(slow, dtype=np.int64)


def _chunk(n_days: int, n_symbols: int, n_pairs: int, chunk: int | None, limit: int) -> int:
    """The pairs per kernel call: ``chunk`` if it fits in ``limit``, else an error that
    says what fits."""
    per_pair = n_symbols * (_KERNEL_ROW + _FRAME_ROW)
    fixed = estimate_memory(n_days, n_symbols, 0)
    # All result rows are kept: the whole sweep must fit however it is chunked.
    total = fixed + n_pairs * n_symbols * _FRAME_ROW + n_symbols * _KERNEL_ROW
    if total > limit:
        most = max(0, (limit - fixed) // max(1, n_symbols * _FRAME_ROW) - 1)
        raise InvalidInputError(
            f"a sweep of {n_pairs:,} pairs × {n_symbols:,} symbols × {n_days:,} days needs "
            f"about {_gb(total)}, over the {_gb(limit)} limit — split the pairs into calls "
            f"of at most {most:,} pairs (or fewer symbols or days)"
        )
    fits = max(1, (limit - fixed - n_pairs * n_symbols * _FRAME_ROW) // max(1, per_pair))
    if chunk is not None:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise InvalidInputError(f"invalid chunk {chunk!r} — expected a number of pairs >= 1")
        need = estimate_memory(n_days, n_symbols, min(chunk, n_pairs))
        need += n_pairs * n_symbols * _FRAME_ROW
        if need > limit:
            raise InvalidInputError(
                f"chunk={chunk:,} pairs × {n_symbols:,} symbols needs about {_gb(need)}, over "
                f"the {_gb(limit)} limit — pass chunk={fits:,} or less"
            )
        return chunk
    target = max(1, _CHUNK_TARGET // max(1, n_symbols * _KERNEL_ROW))
    return int(max(1, min(fits, target, math.ceil(n_pairs / _PROGRESS_STEPS))))


def _frame(
    out: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    symbols: tuple[str, ...],
    cash: float,
    n_days: int,
) -> pl.DataFrame:
    n_pairs, n_symbols, _ = out.shape
    stats = out.reshape(n_pairs * n_symbols, nb.STAT_FIELDS)
    trades, final, max_dd, mean, m2, n_ret, exposure = stats.T
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(m2 / (n_ret - 1.0))
        sharpe = np.where((n_ret > 1) & (m2 > 0), mean / std * math.sqrt(TRADING_DAYS), np.nan)
    return pl.DataFrame(
        {
            "fast": np.repeat(fast, n_symbols),
            "slow": np.repeat(slow, n_symbols),
            "symbol": pl.Series(list(symbols) * n_pairs, dtype=pl.String),
            "total_return_pct": (final / cash - 1.0) * 100.0,
            "n_trades": trades.astype(np.int64),
            "max_drawdown_pct": max_dd * 100.0,
            "sharpe": sharpe,
            "final_equity": final,
            "exposure_pct": exposure / n_days * 100.0,
        },
        schema=_schema(),
    ).with_columns(pl.col("sharpe").fill_nan(None))


def _schema() -> dict[str, pl.DataType]:
    return {
        "fast": pl.Int64(),
        "slow": pl.Int64(),
        "symbol": pl.String(),
        "total_return_pct": pl.Float64(),
        "n_trades": pl.Int64(),
        "max_drawdown_pct": pl.Float64(),
        "sharpe": pl.Float64(),
        "final_equity": pl.Float64(),
        "exposure_pct": pl.Float64(),
    }


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _gb(n_bytes: float) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes / 1024:.0f} KB"
