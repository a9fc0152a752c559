"""Market breadth: one row per date measuring how many symbols of a universe take part in a move.

:func:`breadth_table` takes long-format daily bars (``symbol, date, close, volume``) for any
set of symbols and returns the table described in docs/breadth.md. It is pure (frames in,
frame out) and causal: the row for date ``T`` depends only on bars dated ``<= T``, so the
table of bars truncated at ``T`` equals the full table's rows up to ``T``.

How it is computed (chosen by measurement, see benchmarks/RESULTS.md): every per-symbol
quantity (previous close, SMA, rolling max/min) is an O(n) NumPy pass over the bars sorted by
``(symbol, date)`` — each symbol one contiguous segment — and every per-date count is one
``np.bincount`` over the date index, run over chunks of whole symbols (cache-sized
buffers, two chunks at a time). The per-date series that follow (EMAs, cumulative sums,
the 10-day SMA) are loops over the few thousand dates.

Rules shared by every column:

- **Previous close** is the symbol's previous bar *in the data*: a symbol missing a session
  compares with its last bar before the gap. A symbol's first bar has no previous close.
- **No warm-up.** Everything is computed from the bars given; nothing before the first date is
  assumed. The A/D line and summation index start at the first date with a value, EMAs are
  seeded with their first non-null input, SMA and high/low windows only count a symbol once it
  has enough bars *inside the range*.
- **Nulls, never inf/NaN.** A count that needs a previous close is null on a date where no
  symbol has one (always the first date); a ratio whose denominator is zero is null.
  EMAs and cumulative sums skip null inputs (their state carries over) and are null on those
  dates.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from breadthflow.core.errors import InvalidInputError

SMA_WINDOWS = (20, 50, 200)
HL_INDEX_WINDOW = 10
# A close within this relative distance of its SMA counts as equal (not above): see _above_sma.
SMA_TIE_TOLERANCE = 1e-9
# McClellan oscillator: 19- and 39-day EMAs (the "10% and 5% trends") of net advances —
# Sherman and Marian McClellan, "Patterns for Profit" (1970).
MCCLELLAN_FAST, MCCLELLAN_SLOW = 19, 39
# Zweig breadth thrust: 10-day EMA of A/(A+D) rising from below 0.40 to above 0.615 within
# 10 trading days — Martin Zweig, "Winning on Wall Street" (1986).
ZBT_SPAN, ZBT_LOW, ZBT_HIGH, ZBT_WITHIN = 10, 0.40, 0.615, 10

BREADTH_COLUMNS: tuple[str, ...] = (
    "date",
    "advances",
    "declines",
    "unchanged",
    "adv_volume",
    "dec_volume",
    "net_advances",
    "ad_line",
    "mcclellan_osc",
    "mcclellan_osc_ratio",
    "mcclellan_sum",
    *(f"pct_above_sma{n}" for n in SMA_WINDOWS),
    "new_highs",
    "new_lows",
    "hl_index",
    "trin",
    "zbt",
    "zbt_thrust",
)

_INT_COLUMNS = {
    "advances", "declines", "unchanged", "net_advances", "ad_line", "new_highs", "new_lows",
}  # fmt: skip


def breadth_table(bars: pl.DataFrame | pl.LazyFrame, hl_window: int = 252) -> pl.DataFrame:
    """The breadth table of a universe: one row per date present in ``bars``, sorted.

    ``bars`` needs ``symbol, date, close, volume`` (other columns are ignored) with one row
    per ``(symbol, date)``; rows with a null close are ignored, a null volume counts as 0.
    ``hl_window`` is the look-back of new highs/lows (252 ≈ 52 weeks).

    >>> table = breadth_table(bars, hl_window=252)  # doctest: +SKIP
    >>> table.columns[:4]  # doctest: +SKIP
    ['date', 'advances', 'declines', 'unchanged']
    """
    if isinstance(hl_window, bool) or not isinstance(hl_window, int) or hl_window < 2:
        raise InvalidInputError(f"invalid hl_window {hl_window!r} — expected an integer >= 2")
    lazy = bars.lazy() if isinstance(bars, pl.DataFrame) else bars
    frame = lazy.select("symbol", "date", "close", "volume").collect()
    date_dtype = frame.schema["date"]
    if frame.height == 0:
        return _empty(date_dtype)

    # Every date of the input is a row, even one whose bars all have a null close.
    all_days = frame["date"].to_physical().cast(pl.Int64).to_numpy()
    frame = frame.filter(pl.col("close").is_not_null() & pl.col("close").is_not_nan())
    frame, row_days, new_symbol = _sorted_by_symbol_date(frame)

    days, day_of_row = _date_index(all_days, row_days)
    n_days = days.size
    close = frame["close"].cast(pl.Float64).to_numpy()
    volume = frame["volume"].cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
    starts = np.flatnonzero(new_symbol) if frame.height else np.array([0])
    pos = _position_in_segment(starts, frame.height)

    # Per-row work runs in chunks of whole symbols: buffers stay cache-sized (fresh 100 MB
    # temporaries cost more in page faults than in arithmetic), and two chunks run at
    # once (NumPy releases the GIL). Each chunk returns per-date counts; they add up.
    edges = _chunk_edges(starts, frame.height)
    jobs = [
        (
            close[a:b],
            volume[a:b],
            pos[a:b],
            day_of_row[a:b],
            starts[(starts >= a) & (starts < b)] - a,
        )
        for a, b in itertools.pairwise(edges)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(lambda job: _count_chunk(*job, n_days, hl_window), jobs))
    totals = {key: sum(part[key] for part in parts) for key in parts[0]} if parts else {}
    if not totals:
        empty4 = np.zeros((n_days, 4))
        totals = {"moves": empty4, "volumes": empty4, "hl": empty4}
        totals |= {f"sma{n}": np.zeros((n_days, 3)) for n in SMA_WINDOWS}

    # --- advances / declines / unchanged: close vs the symbol's previous bar -----------
    counts = totals["moves"]
    nothing_compared = counts[:, 1:].sum(axis=1) == 0
    advances = _null_where(counts[:, 1], nothing_compared)
    declines = _null_where(counts[:, 2], nothing_compared)
    unchanged = _null_where(counts[:, 3], nothing_compared)
    adv_volume = _null_where(totals["volumes"][:, 1], nothing_compared)
    dec_volume = _null_where(totals["volumes"][:, 2], nothing_compared)
    net = advances - declines

    # --- % above SMA: symbols above their SMA ÷ symbols with a full window ---------------
    pct_above = {}
    for n in SMA_WINDOWS:
        c = totals[f"sma{n}"]
        pct_above[n] = _ratio(c[:, 1] * 100.0, c[:, 1] + c[:, 2])

    # --- new highs / lows: counted among symbols with a full previous window ------------
    c = totals["hl"]
    no_hl = c[:, 1:].sum(axis=1) == 0
    new_highs = _null_where(c[:, 1], no_hl)
    new_lows = _null_where(c[:, 2], no_hl)

    # --- per-date series ---------------------------------------------------------------
    # A/D line: running total of net advances (the classic cumulative A/D line).
    ad_line = _cumsum(net)
    # McClellan: EMA19 − EMA39 of net advances; the ratio-adjusted form uses
    # (A − D)/(A + D) × 1000 so universes of any size compare (McClellan Financial).
    osc = _ema(net, MCCLELLAN_FAST) - _ema(net, MCCLELLAN_SLOW)
    ratio_net = _ratio((advances - declines) * 1000.0, advances + declines)
    osc_ratio = _ema(ratio_net, MCCLELLAN_FAST) - _ema(ratio_net, MCCLELLAN_SLOW)
    # Summation index: running total of the oscillator (started at 0, not the customary
    # 1,000, because there is no warm-up history to anchor it).
    mcclellan_sum = _cumsum(osc)
    # High-low index: 10-day SMA of the record-high percent NH / (NH + NL) × 100.
    hl_index = _window_mean(_ratio(new_highs * 100.0, new_highs + new_lows), HL_INDEX_WINDOW)
    # Arms index (TRIN), Richard Arms (1967): (A / D) / (AV / DV).
    trin = _ratio(_ratio(advances, declines), _ratio(adv_volume, dec_volume))
    # Zweig breadth thrust (see ZBT_* above).
    zbt = _ema(_ratio(advances, advances + declines), ZBT_SPAN)
    thrust = _thrust(zbt)

    columns = {
        "advances": advances,
        "declines": declines,
        "unchanged": unchanged,
        "adv_volume": adv_volume,
        "dec_volume": dec_volume,
        "net_advances": net,
        "ad_line": ad_line,
        "mcclellan_osc": osc,
        "mcclellan_osc_ratio": osc_ratio,
        "mcclellan_sum": mcclellan_sum,
        **{f"pct_above_sma{n}": pct_above[n] for n in SMA_WINDOWS},
        "new_highs": new_highs,
        "new_lows": new_lows,
        "hl_index": hl_index,
        "trin": trin,
        "zbt": zbt,
    }
    series = [pl.Series("date", days).cast(date_dtype)]
    for name, values in columns.items():
        s = pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)
        series.append(s.cast(pl.Int64) if name in _INT_COLUMNS else s)
    series.append(pl.Series("zbt_thrust", thrust, dtype=pl.Boolean))
    return pl.DataFrame(series).select(BREADTH_COLUMNS)


# --- kernels: plain arrays in, plain arrays out ---------------------------------------------


def _empty(date_dtype: pl.DataType) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {}
    for name in BREADTH_COLUMNS:
        if name == "date":
            schema[name] = date_dtype
        elif name == "zbt_thrust":
            schema[name] = pl.Boolean()
        else:
            schema[name] = pl.Int64() if name in _INT_COLUMNS else pl.Float64()
    return pl.DataFrame(schema=schema)


CHUNK_ROWS = 1 << 18


def _chunk_edges(starts: np.ndarray, n: int) -> list[int]:
    """Row offsets cutting the bars into runs of whole symbols of about CHUNK_ROWS rows."""
    if n == 0:
        return []
    # the first symbol starting at or after every multiple of CHUNK_ROWS
    at = np.searchsorted(starts, np.arange(0, n, CHUNK_ROWS))
    cuts = np.unique(starts[at[at < starts.size]])
    return [*cuts.tolist(), n]


def _count_chunk(
    close: np.ndarray,
    volume: np.ndarray,
    pos: np.ndarray,
    day: np.ndarray,
    starts: np.ndarray,
    n_days: int,
    hl_window: int,
) -> dict[str, np.ndarray]:
    """Per-date counts for a run of whole symbols (each one contiguous, sorted by date).

    Every count is one ``np.bincount`` over ``date index × states + state``.
    """

    def per_day(state: np.ndarray, states: int, weights: np.ndarray | None = None) -> np.ndarray:
        counts = np.bincount(day * states + state, weights=weights, minlength=n_days * states)
        return counts.reshape(n_days, states).astype(np.float64)

    out: dict[str, np.ndarray] = {}
    # 0 = no previous bar, 1 = advance, 2 = decline, 3 = unchanged (vs the previous bar)
    prev = np.empty_like(close)
    prev[1:] = close[:-1]
    prev[:1] = close[:1]
    moves = np.where(close > prev, 1, np.where(close < prev, 2, 3))
    moves[pos == 0] = 0
    out["moves"] = per_day(moves, 4)
    out["volumes"] = per_day(moves, 4, volume)
    # 0 = window not full yet, 1 = above its SMA, 2 = at or below
    for n in SMA_WINDOWS:
        state = np.where(_above_sma(close, starts, n), 1, 2)
        state[pos < n - 1] = 0
        out[f"sma{n}"] = per_day(state, 3)
    # 0 = fewer than hl_window previous bars, 1 = new high, 2 = new low, 3 = neither
    high, low = _beyond_previous_extremes(close, hl_window)
    state = np.where(high, 1, np.where(low, 2, 3))
    state[pos < hl_window] = 0
    out["hl"] = per_day(state, 4)
    return out


def _segment_starts(symbol: pl.Series) -> np.ndarray:
    return (symbol != symbol.shift(1)).fill_null(True).to_numpy()


def _sorted_by_symbol_date(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Sort by (symbol, date) unless each symbol is already one date-sorted run (the lake
    returns bars so). Also returns the dates as integers and where each symbol starts.
    """
    days = frame["date"].to_physical().cast(pl.Int64).to_numpy()
    starts = _segment_starts(frame["symbol"])
    if frame.height == 0:
        return frame, days, starts
    ordered = bool(np.all((np.diff(days) > 0) | starts[1:]))
    if ordered and int(starts.sum()) == frame["symbol"].n_unique():
        return frame, days, starts
    frame = frame.sort("symbol", "date")
    days = frame["date"].to_physical().cast(pl.Int64).to_numpy()
    starts = _segment_starts(frame["symbol"])
    dup = ~starts[1:] & (np.diff(days) == 0)
    if dup.any():
        i = int(np.flatnonzero(dup)[0]) + 1
        raise InvalidInputError(
            f"bars hold more than one row for {frame['symbol'][i]} on {frame['date'][i]} — "
            "expected one row per (symbol, date)"
        )
    return frame, days, starts


def _date_index(all_days: np.ndarray, row_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct dates of the input and, per row, the index of its date."""
    lo, hi = int(all_days.min()), int(all_days.max())
    if hi - lo <= max(4 * all_days.size, 1 << 20):
        # Daily dates span few values: a presence map beats sorting 12M values.
        present = np.bincount(all_days - lo, minlength=hi - lo + 1) > 0
        rank = np.cumsum(present) - 1
        return np.flatnonzero(present) + lo, rank[row_days - lo]
    days = np.unique(all_days)
    return days, np.searchsorted(days, row_days)


def _position_in_segment(starts: np.ndarray, n: int) -> np.ndarray:
    """0 for each symbol's first bar, 1 for its second, …"""
    lengths = np.diff(np.append(starts, n))
    return np.arange(n) - np.repeat(starts, lengths)


def _above_sma(close: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """close > SMA_n(close) per symbol, where the window fits; False elsewhere.

    Rolling sums come from a cumulative sum restarted for each symbol and centred on its
    first close, so the rounding error stays at the scale of one symbol's price moves
    (a flat series compares equal to its SMA, not above it). A close within
    :data:`SMA_TIE_TOLERANCE` (relative) of its SMA is a tie, not "above": prices quoted in
    cents meet their SMA exactly often enough that float rounding must not decide.
    """
    above = np.zeros(close.size, dtype=bool)
    bounds = np.append(starts, close.size)
    for a, b in itertools.pairwise(bounds.tolist()):
        if b - a < n:
            continue
        x = close[a:b] - close[a]
        cs = np.concatenate(([0.0], np.cumsum(x)))
        window_sum = cs[n:] - cs[:-n]  # sum of x[i-n+1 .. i] for i >= n-1
        tolerance = SMA_TIE_TOLERANCE * n * np.abs(close[a + n - 1 : b])
        above[a + n - 1 : b] = x[n - 1 :] * n - window_sum > tolerance
    return above


def _beyond_previous_extremes(close: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per position: close > max and close < min of the ``window`` values before it.

    van Herk / Gil-Werman: per block of ``window`` values a running extreme from the left
    and one from the right; any window is one right-running value plus one left-running
    value. O(n) whatever the window, and vectorised. Windows crossing a symbol boundary
    (or positions with fewer than ``window`` values before them) give values the caller
    masks out.
    """
    n = close.size
    if n <= window:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    full = n // window * window

    def rolling(fn: np.ufunc) -> np.ndarray:
        left = np.empty(n)
        right = np.empty(n)
        grid = close[:full].reshape(-1, window)
        fn.accumulate(grid, axis=1, out=left[:full].reshape(-1, window))
        fn.accumulate(grid[:, ::-1], axis=1, out=right[:full].reshape(-1, window)[:, ::-1])
        if full < n:
            fn.accumulate(close[full:], out=left[full:])
            fn.accumulate(close[full:][::-1], out=right[full:][::-1])
        # extreme of close[j-window+1 .. j] for j = window-1 .. n-2, i.e. of the window
        # *before* position j+1
        return fn(right[: n - window], left[window - 1 : n - 1])

    highest, lowest = rolling(np.maximum), rolling(np.minimum)
    high = np.zeros(n, dtype=bool)
    low = np.zeros(n, dtype=bool)
    np.greater(close[window:], highest, out=high[window:])
    np.less(close[window:], lowest, out=low[window:])
    return high, low


def _null_where(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, np.nan, values)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN (→ null) where either is null or the denominator is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    out[~np.isfinite(out) | (den == 0)] = np.nan
    return out


def _ema(values: np.ndarray, span: int) -> np.ndarray:
    """EMA with alpha = 2/(span+1), seeded with the first non-null value; nulls skipped."""
    alpha = 2.0 / (span + 1)
    out = np.full(values.size, np.nan)
    state = math.nan
    for i, x in enumerate(values.tolist()):
        if math.isnan(x):
            continue
        state = x if math.isnan(state) else state + alpha * (x - state)
        out[i] = state
    return out


def _cumsum(values: np.ndarray) -> np.ndarray:
    """Running total of the non-null values; null where the input is null."""
    out = np.cumsum(np.nan_to_num(values))
    out[np.isnan(values)] = np.nan
    return out


def _window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the non-null values among the last ``window`` dates.

    Null until ``window`` dates have passed since the first non-null value (so the first
    value is a full window's average, not one day's), and null if the window holds none.
    """
    out = np.full(values.size, np.nan)
    valid = ~np.isnan(values)
    if not valid.any():
        return out
    first = int(np.argmax(valid))
    sums = np.concatenate(([0.0], np.cumsum(np.where(valid, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(valid)))
    idx = np.arange(first + window - 1, values.size)
    k = counts[idx + 1] - counts[idx + 1 - window]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[idx] = np.where(k > 0, (sums[idx + 1] - sums[idx + 1 - window]) / k, np.nan)
    return out


def _thrust(zbt: np.ndarray) -> list[bool | None]:
    """zbt > 0.615 today and zbt < 0.40 on one of the previous 10 dates; null where zbt is."""
    low = np.nan_to_num(zbt, nan=1.0) < ZBT_LOW
    out: list[bool | None] = []
    for i, z in enumerate(zbt.tolist()):
        if math.isnan(z):
            out.append(None)
        else:
            out.append(bool(z > ZBT_HIGH and low[max(0, i - ZBT_WITHIN) : i].any()))
    return out
