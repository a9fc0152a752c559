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
- **Running state** (the sliding sums of the SMA, :func:`wma`, :func:`stdev` and
  :func:`bollinger`; the EMA, Wilder and MACD recursions of :func:`ema`, :func:`rsi`,
  :func:`macd`, :func:`atr`): state carried from one symbol into the next would change
  every later value, so these kernels restart at each segment — a symbol's values do not
  depend on which other symbols were scanned with it, nor on how the universe was chunked.
  They follow the definitions of :mod:`breadthflow.indicators.technical` (TA-Lib seeding
  included) and agree with them to rounding (tests/scan/test_formula.py checks every one
  against the per-symbol builders).

Kernels take plain arrays, write into an output array the caller allocates, and release the
GIL: Polars runs two of them side by side (e.g. ``sma(close, 200)`` and ``sma(volume, 20)``),
and a large column is cut in two at a segment's start, each half on its own core — the same
values, since every segment starts afresh. Nulls travel as NaN (the formula's inputs are
finite or null, never NaN) and come back as nulls. Every builder here returns finite values
or null, never ±inf or NaN — the formula language's rule for numbers.

:func:`segments` finds the segments (and, for ``check_bars``, counts per segment the bars in
the scan's range and the bad bars) with compiled loops as well.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import polars as pl
from numba import njit

from breadthflow.scan import _buffers

__all__ = [
    "POS",
    "Segments",
    "atr",
    "bollinger",
    "ema",
    "kernels_loaded",
    "load_kernels",
    "macd",
    "masked",
    "rolling_mean",
    "rsi",
    "segments",
    "stdev",
    "wma",
]

POS = "__pos"  # the bar's index inside its symbol's segment


# --- kernels --------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _positions(
    lengths: np.ndarray, days: np.ndarray, pos: np.ndarray, first_repeat: np.ndarray
) -> bool:
    """Fill ``pos`` (each row's index inside its segment of ``lengths``) and, per segment,
    ``first_repeat`` (the first row repeating its previous date, -1: none). False as soon as
    the dates of a segment go back (the rest is left unfilled).

    Each segment is plain loops over its slices, which LLVM vectorizes; one loop over all
    rows with a running row counter does not vectorize and is about 4× slower.
    """
    row = 0
    for s in range(lengths.shape[0]):
        n = lengths[s]
        day, at = days[row : row + n], pos[row : row + n]
        for k in range(n):
            at[k] = k
        back, same = 0, 0
        for k in range(1, n):
            back += day[k] < day[k - 1]
            same += day[k] == day[k - 1]
        if back:
            return False
        first_repeat[s] = -1
        if same:
            for k in range(1, n):
                if day[k] == day[k - 1]:
                    first_repeat[s] = row + k
                    break
        row += n
    return True


@njit(cache=True, nogil=True)
def _segment_stats(
    lengths: np.ndarray,
    days: np.ndarray,
    lo: int,
    hi: int,
    prices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    volume: np.ndarray,
    in_range: np.ndarray,
    n_bad: np.ndarray,
    first_bad: np.ndarray,
    first: int,
    last: int,
    row: int,
) -> None:
    """Per segment ``first … last - 1`` (the first starting at ``row``): the rows dated
    ``lo … hi``, the number of bad rows and the first of them (-1: none).

    A row is bad when one of the ``prices`` (open, high, low, close) is not finite and
    positive, the ``volume`` is not finite and non-negative, or high < low; an empty array
    is a column that was not loaded, NaN a missing value. The counts per column are plain
    (vectorized) loops; bars are nearly always clean, and only a segment with a bad row is
    walked again row by row, to count a row bad in several ways once and find the first.
    """
    high, low = prices[1], prices[2]
    high_low = high.shape[0] > 0 and low.shape[0] > 0
    for s in range(first, last):
        n = lengths[s]
        day = days[row : row + n]
        inside = 0
        for k in range(n):
            inside += (day[k] >= lo) & (day[k] <= hi)
        bad = 0
        for price in prices:
            if price.shape[0]:
                x = price[row : row + n]
                for k in range(n):
                    bad += not ((x[k] > 0.0) & (x[k] < np.inf))
        if volume.shape[0]:
            x = volume[row : row + n]
            for k in range(n):
                bad += not ((x[k] >= 0.0) & (x[k] < np.inf))
        if high_low:
            x, y = high[row : row + n], low[row : row + n]
            for k in range(n):
                bad += not (x[k] >= y[k])
        first = -1
        if bad:
            bad = 0
            for i in range(row, row + n):
                ok = True
                for price in prices:
                    if price.shape[0]:
                        ok &= 0.0 < price[i] < np.inf
                if volume.shape[0]:
                    ok &= 0.0 <= volume[i] < np.inf
                if high_low:
                    ok &= high[i] >= low[i]
                if not ok:
                    bad += 1
                    if first < 0:
                        first = i
        in_range[s], n_bad[s], first_bad[s] = inside, bad, first
        row += n


@njit(cache=True, nogil=True, inline="always")
def _two_sum(total: float, carry: float, value: float) -> tuple[float, float]:
    """Compensated addition (Knuth's TwoSum): ``total + value`` rounded, and its rounding
    error, exact, added to ``carry`` — ``total + carry`` tracks the exact sum closely.

    Branch-free; the error is the very one Neumaier's branchy form computes, so the sums are
    the same to the last bit. Not faster: the SMA kernel waits on its two dependent
    additions per bar (``total + value``, then ``- old``) whichever way the error is found.
    """
    t = total + value
    back = t - total
    return t, carry + ((total - (t - back)) + (value - back))


@njit(cache=True, nogil=True, inline="always")
def _finite_or_nan(x: float) -> float:
    return x if np.isfinite(x) else np.nan


@njit(cache=True, nogil=True)
def _rolling_mean(values: np.ndarray, pos: np.ndarray, out: np.ndarray, n: int) -> None:
    """Mean of the last ``n`` values of the segment; NaN until ``n`` values are in, while a
    NaN is inside the window, and where the mean overflows. The window sum is compensated
    and restarted at every segment, so a value does not depend on the segments before it."""
    total, carry, nans = 0.0, 0.0, 0
    for i in range(values.shape[0]):
        if pos[i] == 0:
            total, carry, nans = 0.0, 0.0, 0
        value = values[i]
        if np.isnan(value):
            nans += 1
        else:
            total, carry = _two_sum(total, carry, value)
        if pos[i] >= n:
            old = values[i - n]
            if np.isnan(old):
                nans -= 1
            else:
                total, carry = _two_sum(total, carry, -old)
        mean = (total + carry) / n
        out[i] = mean if pos[i] >= n - 1 and nans == 0 and np.isfinite(mean) else np.nan


# A sliding variance is a difference of sums, Σd² − (Σd)²/n with d = x − shift, which loses
# digits as (mean − shift)² grows against σ², and as the sums, carrying rounding from the
# larger values they once held, shrink: past either bound the sums are recomputed, with the
# shift moved to the mean. The first bounds the error to a few ulps of σ²; the second keeps
# the compensated sums' residue (about eps² of the largest Σd² since) far below σ².
_OFF_CENTRE = 16.0  # (mean − shift)² / σ² above which the sums are recomputed
_SHRUNK = 2.0**-20  # share of the largest Σd² since the last recomputation below which too


@njit(cache=True, nogil=True)
def _centred_sums(values: np.ndarray, lo: int, hi: int) -> tuple[float, float, float, float, float]:
    """``(shift, Σd, its carry, Σd², its carry)`` over ``values[lo:hi]`` (no NaN), with
    ``d = x − shift`` and the shift the window's mean, rounded.

    The mean is found as an offset from the last value, which keeps the differences exact
    for prices (Sterbenz) and gives a window of equal values that value itself, so d = 0.
    """
    ref = values[hi - 1]
    offset = 0.0
    for j in range(lo, hi):
        offset += values[j] - ref
    shift = ref + offset / (hi - lo)
    s1, c1, s2, c2 = 0.0, 0.0, 0.0, 0.0
    for j in range(lo, hi):
        d = values[j] - shift
        s1, c1 = _two_sum(s1, c1, d)
        s2, c2 = _two_sum(s2, c2, d * d)
    return shift, s1, c1, s2, c2


@njit(cache=True, nogil=True)
def _rolling_bands(
    values: np.ndarray, pos: np.ndarray, out: np.ndarray, n: int, k: float, centred: bool
) -> None:
    """``mean + k·σ`` of the last ``n`` values of the segment (``centred``: a Bollinger band,
    the mean as :func:`_rolling_mean` finds it) or ``k·σ``, σ the population standard
    deviation (ddof 0); NaN as in :func:`_rolling_mean`.

    O(1) per bar: σ comes from sliding compensated sums of ``d`` and ``d²`` (``d = x −
    shift``), recomputed over the window (O(n)) when they no longer pin σ down to a few
    ulps (see ``_OFF_CENTRE``) — on prices, once every one to three windows. A window of
    equal values has σ = 0 exactly. The sums are NaN until first computed and after an
    overflow, which recomputes them too.
    """
    total, carry = 0.0, 0.0
    shift, s1, c1, s2, c2, peak = np.nan, 0.0, 0.0, 0.0, 0.0, 0.0
    nans, same = 0, 0
    for i in range(values.shape[0]):
        if pos[i] == 0:
            total, carry = 0.0, 0.0
            shift, s1, c1, s2, c2, peak = np.nan, 0.0, 0.0, 0.0, 0.0, 0.0
            nans, same = 0, 0
        value = values[i]
        same = same + 1 if pos[i] > 0 and value == values[i - 1] else 1
        if np.isnan(value):
            nans += 1
        else:
            if centred:
                total, carry = _two_sum(total, carry, value)
            d = value - shift
            s1, c1 = _two_sum(s1, c1, d)
            s2, c2 = _two_sum(s2, c2, d * d)
        if pos[i] >= n:
            old = values[i - n]
            if np.isnan(old):
                nans -= 1
            else:
                if centred:
                    total, carry = _two_sum(total, carry, -old)
                d = old - shift
                s1, c1 = _two_sum(s1, c1, -d)
                s2, c2 = _two_sum(s2, c2, -(d * d))
        if s2 > peak:
            peak = s2
        if pos[i] < n - 1 or nans:
            out[i] = np.nan
            continue
        if same >= n:
            sigma = 0.0
        else:
            first = s1 + c1
            spread = (s2 + c2) - first * first / n  # Σ(x − mean)²
            # written so that NaN sums (not computed yet, or overflowed) fail it too
            if not (first * first <= _OFF_CENTRE * n * spread and spread >= _SHRUNK * peak):
                shift, s1, c1, s2, c2 = _centred_sums(values, i - n + 1, i + 1)
                peak = s2
                first = s1 + c1
                spread = (s2 + c2) - first * first / n
            sigma = np.sqrt(max(spread, 0.0) / n)
        if centred:
            out[i] = _finite_or_nan((total + carry) / n + k * sigma)
        else:
            out[i] = _finite_or_nan(k * sigma)


@njit(cache=True, nogil=True, inline="always")
def _times(weight: float, x: float) -> tuple[float, float]:
    """``weight · x`` as two exact products that add up to it, for a whole ``weight`` below
    2**26: ``x`` split into two halves of 26 bits (Veltkamp). Beyond 2**996 the split would
    overflow, and the product is taken rounded."""
    if abs(x) >= 2.0**996:
        return weight * x, 0.0
    c = 134217729.0 * x
    hi = c - (c - x)
    return weight * hi, weight * (x - hi)


@njit(cache=True, nogil=True)
def _weighted_sums(values: np.ndarray, lo: int, hi: int) -> tuple[float, float, float, float]:
    """``(Σx, its carry, Σ j·x, its carry)`` over ``values[lo:hi]``, ``j`` = 1 … n."""
    plain, pc, weighted, wc = 0.0, 0.0, 0.0, 0.0
    for j in range(lo, hi):
        high, low = _times(float(j - lo + 1), values[j])
        weighted, wc = _two_sum(weighted, wc, high)
        weighted, wc = _two_sum(weighted, wc, low)
        plain, pc = _two_sum(plain, pc, values[j])
    return plain, pc, weighted, wc


@njit(cache=True, nogil=True)
def _rolling_wma(values: np.ndarray, pos: np.ndarray, out: np.ndarray, n: int) -> None:
    """Weighted mean of the last ``n`` values of the segment, weights 1 … n with n on the
    current one (indicators.technical.wma); NaN as in :func:`_rolling_mean`.

    O(1) per bar: the weighted sum slides as ``W_i = W_(i−1) + n·x_i − S_(i−1)`` (``S`` the
    plain sum of the window), both sums compensated and ``n·x_i`` added exactly, so a value
    is the exact weighted sum, to rounding, over ``n(n+1)/2``. A missing value counts as 0
    in the sums (it leaves them as it came) and makes every window it is in NaN; after an
    overflow the sums are recomputed over the window.
    """
    weight, scale = float(n), n * (n + 1) / 2.0
    plain, pc, weighted, wc = 0.0, 0.0, 0.0, 0.0
    nans = 0
    for i in range(values.shape[0]):
        if pos[i] == 0:
            plain, pc, weighted, wc = 0.0, 0.0, 0.0, 0.0
            nans = 0
        value = values[i]
        if np.isnan(value):
            nans += 1
            value = 0.0
        high, low = _times(weight, value)
        # n·x − S to double precision first (its small parts go to the carry), then into W:
        # one compensated addition on W's chain per bar instead of four
        step, error = _two_sum(high, low - pc, -plain)
        weighted, wc = _two_sum(weighted, wc + error, step)
        plain, pc = _two_sum(plain, pc, value)
        if pos[i] >= n:
            old = values[i - n]
            if np.isnan(old):
                nans -= 1
            else:
                plain, pc = _two_sum(plain, pc, -old)
        if pos[i] < n - 1 or nans:
            out[i] = np.nan
            continue
        if not (np.isfinite(weighted + wc) and np.isfinite(plain + pc)):
            plain, pc, weighted, wc = _weighted_sums(values, i - n + 1, i + 1)
        out[i] = _finite_or_nan((weighted + wc) / scale)


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
def _ema(
    values: np.ndarray, pos: np.ndarray, out: np.ndarray, n: int, alpha: float, seed_at: int
) -> None:
    """Seeded exponential smoothing per segment (EMA: ``alpha = 2/(n+1)``, Wilder: ``1/n``)."""
    state = np.zeros(2)
    for i in range(values.shape[0]):
        if pos[i] == 0:
            state[0], state[1] = 0.0, np.nan
        out[i] = _finite_or_nan(_seeded_step(values[i], i, values, n, alpha, seed_at, state))


@njit(cache=True, nogil=True)
def _rsi(
    close: np.ndarray,
    pos: np.ndarray,
    out: np.ndarray,
    gains: np.ndarray,
    losses: np.ndarray,
    n: int,
) -> None:
    """indicators.technical.rsi per segment: Wilder-smoothed gains and losses of the
    bar-to-bar change, ``100 · gain / (gain + loss)`` (NaN when both are 0)."""
    size = close.shape[0]
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
        out[i] = _finite_or_nan(100.0 * (gain / total)) if total != 0.0 else np.nan


@njit(cache=True, nogil=True)
def _macd(
    close: np.ndarray,
    pos: np.ndarray,
    out: np.ndarray,
    line: np.ndarray,
    fast: int,
    slow: int,
    signal: int,
    want_signal: bool,
) -> None:
    """indicators.technical.macd per segment: the line ``EMA_fast − EMA_slow`` (the fast EMA
    seeded on the slow one's seed bar) and its ``signal``-bar EMA; the line is reported only
    where the signal exists, as in TA-Lib."""
    size = close.shape[0]
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
            out[i] = _finite_or_nan(sig)
        else:
            out[i] = _finite_or_nan(line[i]) if not np.isnan(sig) else np.nan


@njit(cache=True, nogil=True)
def _atr(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    pos: np.ndarray,
    out: np.ndarray,
    ranges: np.ndarray,
    n: int,
) -> None:
    """indicators.technical.atr per segment: Wilder smoothing of the true range
    ``max(high − low, |high − prev close|, |low − prev close|)`` (missing terms skipped;
    undefined on a symbol's first bar and after a missing close)."""
    size = close.shape[0]
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
        out[i] = _finite_or_nan(_seeded_step(ranges[i], i, ranges, n, 1.0 / n, n, state))


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
    ones, pos, out = _ro(np.ones(2)), np.empty(2, dtype=np.int32), np.empty(2)
    _positions(lengths, days, pos, np.empty(1, dtype=np.int64))
    counts = [np.empty(1, dtype=np.int64) for _ in range(3)]
    _segment_stats(lengths, days, 0, 1, (ones,) * 4, ones, *counts, 0, 1, 0)
    pos = _ro(pos)
    _rolling_mean(ones, pos, out, 1)
    _rolling_wma(ones, pos, out, 1)
    _rolling_bands(ones, pos, out, 1, 1.0, False)
    _ema(ones, pos, out, 1, 1.0, 1)
    _rsi(ones, pos, out, np.empty(2), np.empty(2), 1)
    _macd(ones, pos, out, np.empty(2), 1, 2, 1, False)
    _atr(ones, ones, ones, pos, out, np.empty(2), 1)


def _load_each_kernel() -> None:
    """Load every kernel with the cyclic garbage collector looking only at new objects.

    Loading creates some hundred thousand long-lived objects (numba's typing and lowering
    registries, and the modules they import): each full collection it sets off would walk
    every object of the process, about 0.15 s in all on the first scan. So what exists
    before — modules, classes, functions of the imports, which live as long as the process
    — is frozen first (:func:`gc.freeze`: moved out of the collector's sight, still freed by
    reference counting), and what the loading made is frozen after it.
    """
    gc.freeze()
    try:
        _call_each_kernel()
    finally:
        gc.freeze()


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
                target=_load_each_kernel, name="breadthflow-scan-kernels", daemon=True
            )
            _loading.start()
        loading = _loading
    if wait:
        loading.join()


def kernels_loaded() -> bool:
    """Whether this process has loaded the compiled kernels (:func:`load_kernels`)."""
    loading = _loading
    return loading is not None and not loading.is_alive()


@dataclass(frozen=True)
class Segments:
    """Bars sorted by ``(symbol, date)`` seen as one segment per symbol."""

    names: pl.Series  # each segment's symbol, in order
    lengths: np.ndarray  # each segment's number of bars (int64)
    pos: np.ndarray  # each bar's index inside its segment (int32)
    first_repeat: np.ndarray  # per segment, the first row repeating a date (-1: none; int64)
    repeated: int | None  # the first row whose date repeats the previous bar's, if any
    days: np.ndarray  # each bar's date as days since 1970-01-01 (int32)
    # Per segment, when asked for (see segments): the bars dated lo … hi, the number of bad
    # bars and the first of them (-1: none) — int64.
    in_range: np.ndarray | None = None
    n_bad: np.ndarray | None = None
    first_bad: np.ndarray | None = None


# Frames at least this long are worth a second thread (and the streaming engine's start-up):
# below, the set-up costs more than it saves (a scan per symbol runs thousands of small ones).
_PARALLEL_ROWS = 1 << 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_T = TypeVar("_T")


def _side_by_side(here: Callable[[], _T], there: Callable[[], object]) -> _T:
    """``here()`` in this thread while a helper thread runs ``there()``; both are compiled
    loops that release the GIL, so they run on two cores. ``here()``'s result."""
    global _pool
    with _pool_lock:
        if _pool is None:  # two: Polars may run two kernels at once, each splitting in two
            _pool = ThreadPoolExecutor(2, thread_name_prefix="breadthflow-scan")
        pool = _pool
    done = pool.submit(there)
    try:
        return here()
    finally:
        done.result()


def _run_starts(symbol: pl.Series) -> np.ndarray:
    """The rows where a run of equal symbols (or of nulls) begins.

    One comparison of each symbol with the one before: about a third of what ``rle()`` and
    ``is_sorted()`` on the strings cost; the streaming engine splits it across the cores.
    """
    big = symbol.len() >= _PARALLEL_ROWS
    starts = (
        symbol.to_frame("s")
        .lazy()
        .select(pl.col("s").ne_missing(pl.col("s").shift(1)).arg_true())
        .collect(engine="streaming" if big else "in-memory")
        .to_series()
        .to_numpy()
        .astype(np.int64)
    )
    if starts.size == 0 or starts[0] != 0:  # a leading null equals the shifted-in null
        starts = np.concatenate((np.zeros(1, dtype=np.int64), starts))
    return starts


def segments(
    symbol: pl.Series,
    date: pl.Series,
    dated: tuple[int, int] | None = None,
    columns: Mapping[str, np.ndarray] | None = None,
) -> Segments | None:
    """The segments of bars sorted by ``(symbol, date)`` (repeated dates allowed), or None
    when they are not so sorted.

    With ``dated = (lo, hi)`` (days since 1970-01-01), also the per-segment counts of the
    bars in that range and of the bad bars among ``columns`` — the bar columns loaded, among
    open, high, low, close and volume (float64, NaN for a missing value). A bar is bad when
    a price is missing, not finite or not positive, the volume is missing, not finite or
    negative, or high < low.

    Costs one comparison of each symbol with the previous one (the symbols are sorted when
    the runs' values are) and compiled passes over the dates (and the columns), side by
    side on two threads for large frames — a fraction of a sort.
    """
    size = symbol.len()
    if size == 0:
        empty = np.empty(0, dtype=np.int32)
        none = empty.astype(np.int64)
        counts = (none, none, none) if dated is not None else (None, None, None)
        return Segments(symbol.head(0), none, empty, none, None, empty, *counts)
    starts = _run_starts(symbol)
    names = symbol.gather(starts)
    if not names.is_sorted():
        return None
    lengths = _ro(np.diff(starts, append=size))
    days = _ro(date.cast(pl.Date).to_physical().to_numpy())
    # Allocated out here, not inside the kernel: numpy asks for huge pages for large arrays,
    # numba's allocator does not, and faulting in 4 KiB pages costs more than the loop; and
    # _buffers reuses the memory of the previous scan.
    pos = _buffers.empty(size, np.int32)
    first_repeat = np.empty(lengths.shape[0], dtype=np.int64)
    counts: tuple[np.ndarray | None, ...] = (None, None, None)
    if dated is None:
        ordered = _positions(lengths, days, pos, first_repeat)
    else:
        counts = tuple(np.empty(lengths.shape[0], dtype=np.int64) for _ in range(3))
        absent = _ro(np.empty(0))
        given = columns or {}
        prices = tuple(_ro(given[c]) if c in given else absent
                       for c in ("open", "high", "low", "close"))  # fmt: skip
        volume = _ro(given["volume"]) if "volume" in given else absent
        lo, hi = dated

        def stats(first: int, last: int) -> None:
            row = int(starts[first]) if first < starts.shape[0] else size
            _segment_stats(lengths, days, lo, hi, prices, volume, *counts, first, last, row)

        whole = lengths.shape[0]
        if size >= _PARALLEL_ROWS:
            # The positions cost about a third of the checks: this thread finds them and
            # checks the first segments (≈ 30% of the rows), the helper the rest.
            cut = int(np.searchsorted(starts, size * 3 // 10))

            def here() -> bool:
                ordered = _positions(lengths, days, pos, first_repeat)
                stats(0, cut)
                return ordered

            ordered = _side_by_side(here, lambda: stats(cut, whole))
        else:
            stats(0, whole)
            ordered = _positions(lengths, days, pos, first_repeat)
    if not ordered:
        return None
    repeats = np.flatnonzero(first_repeat >= 0)
    repeated = int(first_repeat[repeats[0]]) if repeats.size else None
    return Segments(names, lengths, pos, first_repeat, repeated, days, *counts)


def masked(expr: pl.Expr, lookback: int) -> pl.Expr:
    """``expr`` computed over the whole column, kept where it is finite and its window of
    ``lookback`` earlier bars lies inside the bar's own symbol (exact for shifts and
    rolling max/min, whose values depend only on the bars inside the window)."""
    inside = expr.is_finite() if lookback <= 0 else (pl.col(POS) >= lookback) & expr.is_finite()
    return pl.when(inside).then(expr)


def _kernel(kernel: Any, inputs: list[pl.Expr], *args: Any, scratch: int = 0) -> pl.Expr:
    """``kernel(*input arrays, pos, out, *scratch arrays, *args)`` as an expression: the
    kernel fills ``out`` with finite values or NaN, and NaN becomes null.

    ``out`` and the scratch arrays are allocated here by numpy, which asks for huge pages
    for large arrays, and reused from scan to scan (:mod:`~breadthflow.scan._buffers`);
    allocated inside the kernel (numba's allocator, 4 KiB pages) they cost more in page
    faults than the SMA's loop itself. A large column is cut in two at a
    segment's start and the halves run side by side: the kernels restart at every segment,
    so the halves give the very same values as one pass. (Polars also runs the kernels of
    one stage side by side.)"""

    def run(columns: list[pl.Series]) -> pl.Series:
        pos = _ro(columns[-1].to_numpy())
        size = pos.shape[0]
        if size and pos[0] != 0:  # the kernels look back from a segment's start
            raise RuntimeError("a per-symbol kernel was given part of a symbol's bars")
        arrays = [_ro(c.cast(pl.Float64).to_numpy()) for c in columns[:-1]]
        out = _buffers.empty(size)
        scratches = [_buffers.empty(size) for _ in range(scratch)]

        def part(lo: int, hi: int) -> None:
            kernel(*(a[lo:hi] for a in arrays), pos[lo:hi], out[lo:hi],
                   *(s[lo:hi] for s in scratches), *args)  # fmt: skip

        mid = size // 2 - int(pos[size // 2]) if size else 0  # the segment there starts
        if size >= _PARALLEL_ROWS and mid > 0:
            _side_by_side(lambda: part(0, mid), lambda: part(mid, size))
        else:
            part(0, size)
        return pl.Series(out, nan_to_null=True)

    return pl.map_batches([*inputs, pl.col(POS)], run, return_dtype=pl.Float64)


def rolling_mean(x: pl.Expr, n: int) -> pl.Expr:
    """The ``n``-bar simple moving average per symbol (TA-Lib SMA) in one pass."""
    return _kernel(_rolling_mean, [x], n)


def wma(x: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.wma per symbol in one pass (weights 1 … n, n on the current bar)."""
    return _kernel(_rolling_wma, [x], n)


def stdev(x: pl.Expr, n: int) -> pl.Expr:
    """The ``n``-bar population standard deviation (ddof 0, TA-Lib STDDEV) per symbol in one
    pass."""
    return _kernel(_rolling_bands, [x], n, 1.0, False)


def bollinger(x: pl.Expr, n: int, k: float) -> pl.Expr:
    """One of indicators.technical.bollinger's bands per symbol in one pass: ``SMA_n + k·σ_n``
    — the upper band for ``k``, the lower one for ``−k``; the middle is :func:`rolling_mean`'s
    SMA to the bit."""
    return _kernel(_rolling_bands, [x], n, float(k), True)


def ema(x: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.ema per symbol in one pass (``alpha = 2/(n+1)``, SMA seed)."""
    return _kernel(_ema, [x], n, 2.0 / (n + 1), n)


def rsi(close: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.rsi per symbol in one pass."""
    return _kernel(_rsi, [close], n, scratch=2)


def macd(close: pl.Expr, fast: int, slow: int, signal: int, want_signal: bool) -> pl.Expr:
    """indicators.technical.macd's line (or, with ``want_signal``, its signal line) per
    symbol in one pass."""
    return _kernel(_macd, [close], fast, slow, signal, want_signal, scratch=1)


def atr(high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int) -> pl.Expr:
    """indicators.technical.atr per symbol in one pass."""
    return _kernel(_atr, [high, low, close], n, scratch=1)
