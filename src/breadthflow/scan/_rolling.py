"""Per-symbol windows over the whole sorted universe in one pass (numba kernels).

A scan evaluates its formula on long bars sorted by ``(symbol, date)``: each symbol's bars
are one contiguous *segment*. Rather than splitting the frame into thousands of groups
(``.over("symbol")``), the windows here run once over the whole column and restart at every
segment boundary, told where they are by ``pos`` — the bar's index inside its symbol's
segment (0 on a symbol's first bar).

Two kinds of window:

- **Bounded look-back** (``shift``, ``diff``, rolling max/min): the global result on a bar
  whose window lies inside its own segment is exactly the per-symbol result, so the
  expression is computed globally and nulled where ``pos`` says the window would reach into
  the previous symbol (:func:`masked`).
- **Running state** (the SMA's running sum; the EMA, Wilder and MACD recursions of
  :func:`ema`, :func:`rsi`, :func:`macd`, :func:`atr`): state carried from one symbol into
  the next would change every later value, so these kernels restart at each segment — a
  symbol's values do not depend on which other symbols were scanned with it, nor on how the
  universe was chunked. They follow the definitions of
  :mod:`breadthflow.indicators.technical` (TA-Lib seeding included) and agree with them to
  rounding (tests/scan/test_formula.py checks every one against the per-symbol builders).

Kernels take and return plain arrays and release the GIL (so that Polars can run two of
them side by side, e.g. ``sma(close, 200)`` and ``sma(volume, 20)``); nulls travel as NaN
(the formula's inputs are finite or null, never NaN) and come back as nulls. Every builder
here returns finite values or null, never ±inf or NaN — the formula language's rule for
numbers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numba import njit

__all__ = [
    "POS",
    "Segments",
    "atr",
    "ema",
    "load_kernels",
    "macd",
    "masked",
    "rolling_mean",
    "rsi",
    "segment_stats",
    "segments",
]

POS = "__pos"  # the bar's index inside its symbol's segment


# --- kernels --------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _positions(lengths: np.ndarray, dates: np.ndarray) -> tuple[np.ndarray, bool, int]:
    """``pos`` for segments of ``lengths``; whether the dates increase inside every segment
    (False as soon as one goes back); the first row repeating its previous date, or -1."""
    pos = np.empty(dates.shape[0], dtype=np.int32)
    repeated = -1
    row = 0
    for length in lengths:
        for k in range(length):
            pos[row] = k
            if k > 0:
                if dates[row] < dates[row - 1]:
                    return pos, False, -1
                if dates[row] == dates[row - 1] and repeated < 0:
                    repeated = row
            row += 1
    return pos, True, repeated


@njit(cache=True, nogil=True)
def _segment_stats(
    lengths: np.ndarray, dates: np.ndarray, bad: np.ndarray, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per segment: rows dated ``lo … hi``, the first row repeating a date (-1: none), the
    number of ``bad`` rows and the first of them (-1: none)."""
    count = lengths.shape[0]
    in_range = np.zeros(count, dtype=np.int64)
    first_repeat = np.full(count, -1, dtype=np.int64)
    n_bad = np.zeros(count, dtype=np.int64)
    first_bad = np.full(count, -1, dtype=np.int64)
    row = 0
    for s in range(count):
        for k in range(lengths[s]):
            day = dates[row]
            if lo <= day <= hi:
                in_range[s] += 1
            if k > 0 and day == dates[row - 1] and first_repeat[s] < 0:
                first_repeat[s] = row
            if bad.shape[0] and bad[row]:
                n_bad[s] += 1
                if first_bad[s] < 0:
                    first_bad[s] = row
            row += 1
    return in_range, first_repeat, n_bad, first_bad


@njit(cache=True, nogil=True, inline="always")
def _add(total: float, carry: float, value: float) -> tuple[float, float]:
    """Neumaier's compensated addition: ``total + carry`` tracks the exact sum closely."""
    t = total + value
    if abs(total) >= abs(value):
        carry += (total - t) + value
    else:
        carry += (value - t) + total
    return t, carry


@njit(cache=True, nogil=True)
def _rolling_mean(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values of the segment; NaN until ``n`` values are in, while a
    NaN is inside the window, and where the mean overflows. The window sum is compensated
    and restarted at every segment, so a value does not depend on the segments before it."""
    out = np.empty(values.shape[0])
    total, carry, nans = 0.0, 0.0, 0
    for i in range(values.shape[0]):
        if pos[i] == 0:
            total, carry, nans = 0.0, 0.0, 0
        value = values[i]
        if np.isnan(value):
            nans += 1
        else:
            total, carry = _add(total, carry, value)
        if pos[i] >= n:
            old = values[i - n]
            if np.isnan(old):
                nans -= 1
            else:
                total, carry = _add(total, carry, -old)
        mean = (total + carry) / n
        out[i] = mean if pos[i] >= n - 1 and nans == 0 and np.isfinite(mean) else np.nan
    return out


@njit(cache=True, nogil=True, inline="always")
def _seeded_step(
    value: float, i: int, values: np.ndarray, n: int, alpha: float, seed_at: int, state: np.ndarray
) -> float:
    """One bar of the seeded exponential smoothing of indicators.technical._seeded_ewm.

    ``state`` = [non-null values so far, smoothed value (NaN: none yet)], reset per segment
    by the caller. The seed, on the ``seed_at``-th non-null value, is the mean of the last
    ``n`` rows (NaN if one is missing, and the smoothing then starts from the next value);
    after it ``s += alpha * (x - s)``. A missing value gives NaN and is skipped.
    """
    if np.isnan(value):
        return np.nan
    state[0] += 1.0
    count = state[0]
    if count < seed_at:
        return np.nan
    if count == seed_at:
        total = 0.0
        for j in range(i - n + 1, i + 1):
            total += values[j]
        state[1] = total / n  # NaN when a row of the window is missing
        return state[1]
    if np.isnan(state[1]):
        state[1] = value
    else:
        state[1] += alpha * (value - state[1])
    return state[1]


@njit(cache=True, nogil=True)
def _ema(values: np.ndarray, pos: np.ndarray, n: int, alpha: float, seed_at: int) -> np.ndarray:
    """Seeded exponential smoothing per segment (EMA: ``alpha = 2/(n+1)``, Wilder: ``1/n``)."""
    out = np.empty(values.shape[0])
    state = np.zeros(2)
    for i in range(values.shape[0]):
        if pos[i] == 0:
            state[0], state[1] = 0.0, np.nan
        out[i] = _seeded_step(values[i], i, values, n, alpha, seed_at, state)
    return out


@njit(cache=True, nogil=True)
def _rsi(close: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """indicators.technical.rsi per segment: Wilder-smoothed gains and losses of the
    bar-to-bar change, ``100 · gain / (gain + loss)`` (NaN when both are 0)."""
    size = close.shape[0]
    gains, losses, out = np.empty(size), np.empty(size), np.empty(size)
    for i in range(size):
        change = close[i] - close[i - 1] if pos[i] > 0 else np.nan
        gains[i] = max(change, 0.0) if not np.isnan(change) else np.nan
        losses[i] = max(-change, 0.0) if not np.isnan(change) else np.nan
    up, down = np.zeros(2), np.zeros(2)
    for i in range(size):
        if pos[i] == 0:
            up[0], up[1], down[0], down[1] = 0.0, np.nan, 0.0, np.nan
        gain = _seeded_step(gains[i], i, gains, n, 1.0 / n, n, up)
        loss = _seeded_step(losses[i], i, losses, n, 1.0 / n, n, down)
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else np.nan
    return out


@njit(cache=True, nogil=True)
def _macd(
    close: np.ndarray, pos: np.ndarray, fast: int, slow: int, signal: int, want_signal: bool
) -> np.ndarray:
    """indicators.technical.macd per segment: the line ``EMA_fast − EMA_slow`` (the fast EMA
    seeded on the slow one's seed bar) and its ``signal``-bar EMA; the line is reported only
    where the signal exists, as in TA-Lib."""
    size = close.shape[0]
    line, out = np.empty(size), np.empty(size)
    quick, steady, smooth = np.zeros(2), np.zeros(2), np.zeros(2)
    for i in range(size):
        if pos[i] == 0:
            quick[0], quick[1], steady[0], steady[1] = 0.0, np.nan, 0.0, np.nan
        a = _seeded_step(close[i], i, close, fast, 2.0 / (fast + 1), slow, quick)
        b = _seeded_step(close[i], i, close, slow, 2.0 / (slow + 1), slow, steady)
        line[i] = a - b
    for i in range(size):
        if pos[i] == 0:
            smooth[0], smooth[1] = 0.0, np.nan
        sig = _seeded_step(line[i], i, line, signal, 2.0 / (signal + 1), signal, smooth)
        if want_signal:
            out[i] = sig
        else:
            out[i] = line[i] if not np.isnan(sig) else np.nan
    return out


@njit(cache=True, nogil=True)
def _atr(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, pos: np.ndarray, n: int
) -> np.ndarray:
    """indicators.technical.atr per segment: Wilder smoothing of the true range
    ``max(high − low, |high − prev close|, |low − prev close|)`` (missing terms skipped;
    undefined on a symbol's first bar and after a missing close)."""
    size = close.shape[0]
    ranges, out = np.empty(size), np.empty(size)
    for i in range(size):
        prev = close[i - 1] if pos[i] > 0 else np.nan
        best = np.nan
        if not np.isnan(prev):
            for term in (high[i] - low[i], abs(high[i] - prev), abs(low[i] - prev)):
                if not np.isnan(term) and (np.isnan(best) or term > best):
                    best = term
        ranges[i] = best
    state = np.zeros(2)
    for i in range(size):
        if pos[i] == 0:
            state[0], state[1] = 0.0, np.nan
        out[i] = _seeded_step(ranges[i], i, ranges, n, 1.0 / n, n, state)
    return out


# --- wrappers -------------------------------------------------------------------------------

_loading: threading.Thread | None = None
_loading_lock = threading.Lock()


def _ro(array: np.ndarray) -> np.ndarray:
    """A read-only view. Kernels always get read-only arrays: numba compiles (and caches) one
    machine-code version per argument type, and read-only is a type of its own — Polars hands
    out read-only views of its buffers, writable copies when it has to convert."""
    view = array.view()
    view.flags.writeable = False
    return view


def _call_each_kernel() -> None:
    lengths, days = _ro(np.array([2], dtype=np.int64)), _ro(np.array([0, 1], dtype=np.int32))
    _positions(lengths, days)
    _segment_stats(lengths, days, _ro(np.zeros(2, dtype=np.bool_)), 0, 1)
    ones, pos = _ro(np.ones(2)), _ro(np.array([0, 1], dtype=np.int32))
    _rolling_mean(ones, pos, 1)
    _ema(ones, pos, 1, 1.0, 1)
    _rsi(ones, pos, 1)
    _macd(ones, pos, 1, 2, 1, False)
    _atr(ones, ones, ones, pos, 1)


def load_kernels(wait: bool = False) -> None:
    """Start loading the compiled kernels in a background thread (once per process); with
    ``wait``, also wait until they are loaded.

    The first call of a numba function in a process costs a few tenths of a second
    (setting up LLVM, loading the cached machine code); a scan calls this before reading
    its bars, so that the loading overlaps the read instead of following it. A kernel
    called meanwhile simply waits for the loader (numba's compiler lock).
    """
    global _loading
    with _loading_lock:
        if _loading is None:
            _loading = threading.Thread(
                target=_call_each_kernel, name="breadthflow-scan-kernels", daemon=True
            )
            _loading.start()
        loading = _loading
    if wait:
        loading.join()


@dataclass(frozen=True)
class Segments:
    """Bars sorted by ``(symbol, date)`` seen as one segment per symbol."""

    names: pl.Series  # each segment's symbol, in order
    lengths: np.ndarray  # each segment's number of bars (int64)
    pos: np.ndarray  # each bar's index inside its segment (int32)
    repeated: int | None  # the first row whose date repeats the previous bar's, if any
    days: np.ndarray  # each bar's date as days since 1970-01-01 (int32)


def segments(symbol: pl.Series, date: pl.Series) -> Segments | None:
    """The segments of bars sorted by ``(symbol, date)`` (repeated dates allowed), or None
    when they are not so sorted.

    Costs a sortedness check of ``symbol``, its run lengths and one pass over the dates —
    a fraction of a sort.
    """
    if symbol.len() == 0:
        empty = np.empty(0, dtype=np.int32)
        return Segments(symbol.head(0), empty.astype(np.int64), empty, None, empty)
    if not symbol.is_sorted():
        return None
    runs = symbol.rle()
    lengths = runs.struct.field("len").to_numpy().astype(np.int64)
    days = date.cast(pl.Date).to_physical().to_numpy()
    pos, ordered, repeated = _positions(_ro(lengths), _ro(days))
    if not ordered:
        return None
    names = runs.struct.field("value")
    return Segments(names, lengths, pos, None if repeated < 0 else int(repeated), days)


def segment_stats(
    found: Segments, bad: np.ndarray | None, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per segment: bars dated ``lo … hi`` (days since 1970-01-01), the first row repeating
    a date (-1: none), the number of ``bad`` rows and the first (-1: none)."""
    if bad is None:
        bad = np.zeros(0, dtype=np.bool_)
    return _segment_stats(_ro(found.lengths), _ro(found.days), _ro(bad), lo, hi)


def masked(expr: pl.Expr, lookback: int) -> pl.Expr:
    """``expr`` computed over the whole column, kept where it is finite and its window of
    ``lookback`` earlier bars lies inside the bar's own symbol (exact for shifts and
    rolling max/min, whose values depend only on the bars inside the window)."""
    inside = expr.is_finite() if lookback <= 0 else (pl.col(POS) >= lookback) & expr.is_finite()
    return pl.when(inside).then(expr)


def _kernel(kernel: Any, inputs: list[pl.Expr], *args: Any) -> pl.Expr:
    """``kernel(*input arrays, pos, *args)`` as an expression; NaN and ±inf become null."""

    def run(columns: list[pl.Series]) -> pl.Series:
        pos = columns[-1].to_numpy()
        if pos.shape[0] and pos[0] != 0:  # the kernels look back from a segment's start
            raise RuntimeError("a per-symbol kernel was given part of a symbol's bars")
        arrays = [c.cast(pl.Float64).to_numpy() for c in columns[:-1]]
        out = kernel(*map(_ro, arrays), _ro(pos), *args)
        out[~np.isfinite(out)] = np.nan
        return pl.Series(out, nan_to_null=True)

    return pl.map_batches([*inputs, pl.col(POS)], run, return_dtype=pl.Float64)


def rolling_mean(x: pl.Expr, n: int) -> pl.Expr:
    """The ``n``-bar simple moving average per symbol (TA-Lib SMA) in one pass."""
    return _kernel(_rolling_mean, [x], n)


def ema(x: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.ema per symbol in one pass (``alpha = 2/(n+1)``, SMA seed)."""
    return _kernel(_ema, [x], n, 2.0 / (n + 1), n)


def rsi(close: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.rsi per symbol in one pass."""
    return _kernel(_rsi, [close], n)


def macd(close: pl.Expr, fast: int, slow: int, signal: int, want_signal: bool) -> pl.Expr:
    """indicators.technical.macd's line (or, with ``want_signal``, its signal line) per
    symbol in one pass."""
    return _kernel(_macd, [close], fast, slow, signal, want_signal)


def atr(high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.atr per symbol in one pass."""
    return _kernel(_atr, [high, low, close], n)
