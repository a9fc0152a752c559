"""Market breadth: one row per date measuring how many symbols of a universe take part in a move.

:func:`breadth_table` takes long-format daily bars (``symbol, date, close, volume``) for any
set of symbols and returns the table described in docs/breadth.md. It is pure (frames in,
frame out) and causal: the row for date ``T`` depends only on bars dated ``<= T``, so the
table of bars truncated at ``T`` equals the full table's rows up to ``T``.

How it is computed (chosen by measurement, see benchmarks/RESULTS.md): the bars, sorted by
``(symbol, date)``, are cut into chunks of whole symbols (cache-sized, two counted at a time
in threads since NumPy releases the GIL). A chunk is laid out as a symbols × bars grid, one
symbol per row, so every per-symbol quantity (previous close, SMA, rolling max/min) is a
vectorised pass along the rows, and every per-date count is a column sum when the chunk's
symbols share their dates (else one ``np.bincount`` by date). The per-date series that
follow (EMAs, cumulative sums, the 10-day SMA) are loops over the few thousand dates.

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
import threading
from collections.abc import Iterator
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

    It is :func:`breadth_from_counts` of :func:`breadth_counts` — the split a distributed
    engine uses to count groups of symbols apart (breadthflow.engine.spark).

    >>> table = breadth_table(bars, hl_window=252)  # doctest: +SKIP
    >>> table.columns[:4]  # doctest: +SKIP
    ['date', 'advances', 'declines', 'unchanged']
    """
    return breadth_from_counts(breadth_counts(bars, hl_window))


#: The per-date counts of :func:`breadth_counts`: each adds up over disjoint groups of
#: symbols. ``present``: rows (with a close or not); ``compared``: bars with a previous bar;
#: ``fullN``/``aboveN``: bars with a full N-day SMA window / above that SMA; ``full_hl``:
#: bars with ``hl_window`` previous ones.
COUNT_COLUMNS: tuple[str, ...] = (
    "present", "compared", "advances", "declines", "adv_volume", "dec_volume",
    *itertools.chain.from_iterable((f"full{n}", f"above{n}") for n in SMA_WINDOWS),
    "full_hl", "new_highs", "new_lows",
)  # fmt: skip


def breadth_counts(bars: pl.DataFrame | pl.LazyFrame, hl_window: int = 252) -> pl.DataFrame:
    """Per-date counts (:data:`COUNT_COLUMNS`, Float64) of the symbols in ``bars``: the
    per-symbol half of :func:`breadth_table`, one row per date present in ``bars``, sorted.

    Every symbol is counted on its own bars only, so the counts of disjoint groups of
    symbols, added date by date, equal the counts of all of them together (exactly, for
    whole-number volumes; float volume sums may differ in the last bit with the order of
    addition). Same input rules as :func:`breadth_table`.
    """
    if isinstance(hl_window, bool) or not isinstance(hl_window, int) or hl_window < 2:
        raise InvalidInputError(f"invalid hl_window {hl_window!r} — expected an integer >= 2")
    lazy = bars.lazy() if isinstance(bars, pl.DataFrame) else bars
    frame = lazy.select(
        "symbol", "date", pl.col("close").cast(pl.Float64), pl.col("volume").cast(pl.Float64)
    ).collect()
    date_dtype = frame.schema["date"]
    if frame.height == 0:
        return pl.DataFrame(schema={"date": date_dtype, **dict.fromkeys(COUNT_COLUMNS, pl.Float64)})
    if frame["date"].null_count():
        raise InvalidInputError(
            f"bars hold {frame['date'].null_count()} row(s) without a date — every bar needs one"
        )

    slots = _DaySlots(frame["date"])
    counts = _count_per_day(frame, slots, hl_window)
    if counts is None:  # not one date-ordered run per symbol: sort (rare, costs a copy)
        frame = frame.sort("symbol", "date")
        counts = _count_per_day(frame, slots, hl_window)
        if counts is None:  # sorted, yet a date does not increase: a repeated bar
            _refuse_duplicates(frame)
    assert counts is not None
    # Every date of the input is a row, even one whose bars all have a null close.
    present = counts["present"] > 0
    columns = [pl.Series("date", slots.values[present]).cast(date_dtype)]
    columns += [pl.Series(k, counts[k][present], dtype=pl.Float64) for k in COUNT_COLUMNS]
    return pl.DataFrame(columns)


def breadth_from_counts(counts: pl.DataFrame) -> pl.DataFrame:
    """The breadth table (one row per date, sorted) from :func:`breadth_counts` — of one
    group of symbols, or of several concatenated (rows of one date are added up)."""
    missing = [c for c in ("date", *COUNT_COLUMNS) if c not in counts.columns]
    if missing:
        raise InvalidInputError(f"breadth counts lack column(s) {', '.join(missing)}")
    date_dtype = counts.schema["date"]
    if counts.height == 0:
        return _empty(date_dtype)
    counts = counts.select("date", *(pl.col(c).cast(pl.Float64) for c in COUNT_COLUMNS))
    if counts["date"].is_duplicated().any():
        counts = counts.group_by("date").agg(pl.all().sum())
    counts = counts.sort("date")
    totals = {key: counts[key].to_numpy() for key in COUNT_COLUMNS}
    days = counts["date"]

    # --- advances / declines / unchanged: close vs the symbol's previous bar -----------
    nothing_compared = totals["compared"] == 0
    advances = _null_where(totals["advances"], nothing_compared)
    declines = _null_where(totals["declines"], nothing_compared)
    unchanged = _null_where(
        totals["compared"] - totals["advances"] - totals["declines"], nothing_compared
    )
    adv_volume = _null_where(totals["adv_volume"], nothing_compared)
    dec_volume = _null_where(totals["dec_volume"], nothing_compared)
    net = advances - declines

    # --- % above SMA: symbols above their SMA ÷ symbols with a full window ---------------
    pct_above = {n: _ratio(totals[f"above{n}"] * 100.0, totals[f"full{n}"]) for n in SMA_WINDOWS}

    # --- new highs / lows: counted among symbols with a full previous window ------------
    no_hl = totals["full_hl"] == 0
    new_highs = _null_where(totals["new_highs"], no_hl)
    new_lows = _null_where(totals["new_lows"], no_hl)

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
    series = [days]
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


# Cells (symbols × bars, padding included) handled at once: buffers stay cache-sized, since
# fresh 100 MB temporaries cost more in page faults than in arithmetic.
CHUNK_ROWS = 1 << 17
# Daily dates map to "days since the first date" when they span at most this many values
# (179 years); anything wider (timestamps) is ranked among its distinct values instead.
MAX_DAY_OFFSETS = 1 << 16


class _DaySlots:
    """Numbers the dates of the input 0, 1, … so that per-date counts are array indices.

    ``values`` holds the physical date of each slot, plus one spare slot at the end that
    collects padding (never a date of the input). Slots keep the order of dates, so dates
    increase within a symbol exactly when its slots do.
    """

    def __init__(self, dates: pl.Series) -> None:
        physical = dates.to_physical()
        lo, hi = int(physical.min()), int(physical.max())  # type: ignore[arg-type]
        if hi - lo < MAX_DAY_OFFSETS:
            self._lo: int | None = lo
            self.values = np.arange(lo, hi + 1, dtype=np.int64)
        else:
            self._lo = None
            self.values = physical.unique().sort().to_numpy().astype(np.int64)
        self.size = self.values.size
        self.padding = self.size

    def of(self, dates: pl.Series, out: np.ndarray) -> np.ndarray:
        """The slot of each date (``dates`` holds no nulls), written to ``out``."""
        raw = dates.to_physical().to_numpy()
        if self._lo is not None:
            return np.subtract(raw, self._lo, out=out, dtype=np.intp)
        out[:] = np.searchsorted(self.values, raw)
        return out


def _count_per_day(
    frame: pl.DataFrame, slots: _DaySlots, hl_window: int
) -> dict[str, np.ndarray] | None:
    """Per-slot counts (see :func:`_count_chunk`), or None if some symbol's rows are not
    one run in increasing date order.

    Runs of whole symbols are counted two at a time (NumPy releases the GIL) and their
    counts add up. Each run is copied out of ``frame`` on its own, so no full-length
    array is ever built.
    """
    runs = frame["symbol"].rle().struct.unnest()
    if runs["value"].n_unique() < runs.height:
        return None
    lengths = runs["len"].to_numpy().astype(np.intp)
    edges = _chunk_edges(lengths, CHUNK_ROWS)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    workers = threading.local()

    def count(bounds: tuple[int, int]) -> dict[str, np.ndarray] | None:
        first, last = bounds
        a, b = int(offsets[first]), int(offsets[last])
        if not hasattr(workers, "scratch"):
            workers.scratch = _Scratch()
        chunk = frame.slice(a, b - a)
        return _count_chunk(chunk, lengths[first:last], slots, hl_window, workers.scratch)

    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = list(pool.map(count, itertools.pairwise(edges)))
    if any(part is None for part in parts):
        return None
    totals = {key: sum(part[key] for part in parts) for key in parts[0]}  # type: ignore[index]
    return {key: value[: slots.size] for key, value in totals.items()}


def _chunk_edges(lengths: np.ndarray, cells: int) -> list[int]:
    """Symbol indices cutting the runs into chunks whose grids (symbols × the longest run)
    hold at most ``cells`` values — or one symbol, if that alone is longer."""
    edges = [0]
    count = widest = 0
    for index, length in enumerate(lengths.tolist()):
        wider = max(widest, length)
        if count and (count + 1) * wider > cells:
            edges.append(index)
            count, wider = 0, length
        count, widest = count + 1, wider
    edges.append(lengths.size)
    return edges


class _Scratch:
    """Arrays that one worker thread reuses from chunk to chunk.

    Each chunk needs a dozen grid-sized temporaries; allocated afresh, they come back from
    the allocator as new pages, whose first touch cost more than the arithmetic done in
    them (measured: 100 k page faults and 0.6 s of 1.1 s for the SMAs of 12.6 M bars).
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """The array called ``name``, of ``shape`` (contents undefined)."""
        size = math.prod(shape)
        array = self._arrays.get(name)
        if array is None or array.size < size:
            array = self._arrays[name] = np.empty(max(size, CHUNK_ROWS), dtype=dtype)
        return array[:size].reshape(shape)


class _Grid:
    """A run of symbols laid out as a symbols × bars matrix, each symbol's bars in one row
    starting at column 0 (column = position in the symbol's own history), short rows
    padded at the end. Per-symbol windows become plain column offsets."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.rows = lengths.size
        self.width = int(lengths.max()) if lengths.size else 0
        self._filled = None
        if (lengths != self.width).any():
            self._filled = np.arange(self.width) < lengths[:, None]

    def place(self, values: np.ndarray, padding: float) -> np.ndarray:
        """``values`` (the chunk's rows, in order) as a grid, ``padding`` after short rows."""
        if self._filled is None:
            return values.reshape(self.rows, self.width)
        out = np.full((self.rows, self.width), padding, dtype=values.dtype)
        out[self._filled] = values
        return out


def _count_chunk(
    bars: pl.DataFrame, lengths: np.ndarray, slots: _DaySlots, hl_window: int, scratch: _Scratch
) -> dict[str, np.ndarray] | None:
    """Per-slot counts for a run of whole symbols, or None if a symbol's dates do not
    increase: ``present`` (rows, with a close or not), ``compared`` (bars with a previous
    bar), ``advances``, ``declines`` and their volumes, ``fullN``/``aboveN`` (bars with a
    full SMA window / above that SMA), ``full_hl`` (bars with ``hl_window`` previous
    ones), ``new_highs``, ``new_lows``."""
    close = bars["close"].to_numpy()
    volume = bars["volume"].to_numpy()
    slot = slots.of(bars["date"], scratch.get("slot", (bars.height,), np.intp))
    # Rows without a close still make their date a row of the table; nothing else.
    present = np.bincount(slot, minlength=slots.size + 1)
    valid = ~np.isnan(close)  # null closes arrive as NaN, like NaN ones
    if not valid.all():
        symbol_of_row = np.repeat(np.arange(lengths.size), lengths)
        lengths = np.bincount(symbol_of_row[valid], minlength=lengths.size)
        close, volume, slot = close[valid], volume[valid], slot[valid]
    if not _increasing_within(slot, lengths):
        return None
    if np.isnan(volume).any():
        volume = np.where(np.isnan(volume), 0.0, volume)  # a null volume counts as 0

    grid = _Grid(lengths)
    prices = grid.place(close, 0.0)
    # Padding goes to the spare slot, which is dropped: it needs no masking anywhere.
    count = _SlotCounter(grid.place(slot, slots.padding), slots.size + 1, scratch)
    volumes = grid.place(volume, 0.0)
    before, after = prices[:, :-1], prices[:, 1:]
    advance, decline = after > before, after < before
    out = {"present": present, "compared": count.rows(1)}
    # infinite closes or volumes give NaN in places; they compare and count as they are
    with np.errstate(invalid="ignore", over="ignore"):
        out["advances"], out["declines"] = count.true(advance), count.true(decline)
        out["adv_volume"] = count.true(advance, volumes)
        out["dec_volume"] = count.true(decline, volumes)
        for n, above in _above_sma(prices, SMA_WINDOWS, scratch):
            out[f"full{n}"], out[f"above{n}"] = count.rows(n - 1), count.true(above)
        high, low = _new_highs_lows(prices, hl_window, scratch)
    out["full_hl"] = count.rows(hl_window)
    out["new_highs"], out["new_lows"] = count.true(high), count.true(low)
    return out


class _SlotCounter:
    """Adds up cells of a chunk's grid per slot (date).

    ``days`` is the grid of slots. When every row holds the same slots — symbols trading
    on the same dates, the usual case — a column is one date and counting is a column
    sum; otherwise cells are gathered and ``np.bincount``-ed by slot. Either way values
    are added in row order, so sums do not depend on the path taken.
    """

    def __init__(self, days: np.ndarray, size: int, scratch: _Scratch) -> None:
        self._days = days
        self._size = size
        self._scratch = scratch
        self._shared = days[0] if days.size and (days == days[0]).all() else None

    def rows(self, start: int) -> np.ndarray:
        """Per slot: rows with a cell at column ``start`` or later (bar ``start + 1`` on)."""
        if self._shared is not None:
            out = np.zeros(self._size)
            out[self._shared[start:]] = self._days.shape[0]
            return out
        return np.bincount(self._days[:, start:].ravel(), minlength=self._size).astype(float)

    def true(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per slot: cells where ``mask`` holds (or the sum of their ``weights``).

        ``mask`` covers the last ``mask.shape[1]`` columns of the grid; ``weights`` is a
        full grid.
        """
        start = self._days.shape[1] - mask.shape[1]
        if weights is not None:
            weights = weights[:, start:]
        if self._shared is not None:
            out = np.zeros(self._size)
            out[self._shared[start:]] = self._column_sums(mask, weights)
            return out
        days = self._days[:, start:][mask]
        picked = None if weights is None else weights[mask]
        return np.bincount(days, weights=picked, minlength=self._size).astype(float)

    def _column_sums(self, mask: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Per column: how many cells of ``mask`` hold, or the sum of their ``weights``
        (added row by row, like ``np.bincount``)."""
        if weights is None:
            return mask.view(np.uint8).sum(axis=0, dtype=np.int64)
        # a multiply is ~5x faster than np.where here
        picked = np.multiply(weights, mask, out=self._scratch.get("picked", mask.shape))
        sums = picked.sum(axis=0)
        if np.isnan(sums).any():  # an infinite weight times False: leave those cells out
            sums = np.where(mask, weights, 0.0).sum(axis=0)
        return sums


def _increasing_within(slot: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether dates strictly increase inside each symbol's run of rows."""
    steps = np.diff(slot) > 0
    # the step into each symbol's first row may go anywhere
    firsts = np.cumsum(lengths)[:-1] - 1
    steps[firsts[(firsts >= 0) & (firsts < steps.size)]] = True
    return bool(steps.all())


def _above_sma(
    prices: np.ndarray, windows: tuple[int, ...], scratch: _Scratch
) -> Iterator[tuple[int, np.ndarray]]:
    """Per window ``n``: close > SMA_n(close), for columns ``n - 1`` onwards of the grid.

    Rolling sums come from a cumulative sum along each row (each symbol's own closes),
    centred on its first close, so the rounding error stays at the scale of one symbol's
    price moves (a flat series compares equal to its SMA, not above it). A close within
    :data:`SMA_TIE_TOLERANCE` (relative) of its SMA is a tie, not "above": prices quoted
    in cents meet their SMA exactly often enough that float rounding must not decide.
    Windows longer than a row give an empty result.
    """
    rows, width = prices.shape
    x = np.subtract(prices, prices[:, :1], out=scratch.get("x", prices.shape))
    sums = np.cumsum(x, axis=1, out=scratch.get("sums", prices.shape))
    scale = np.abs(prices, out=scratch.get("scale", prices.shape))
    # Two buffers reused for every window; the arithmetic is x*n - (sums[j] - sums[j-n]).
    excess, bound = scratch.get("excess", prices.shape), scratch.get("bound", prices.shape)
    for n in windows:
        if width < n:
            yield n, np.zeros((rows, 0), dtype=bool)
            continue
        over, limit = excess[:, : width - n + 1], bound[:, : width - n + 1]
        np.multiply(x[:, n - 1 :], n, out=over)
        over[:, 0] -= sums[:, n - 1]  # the first window sum is sums[n-1] itself
        np.subtract(sums[:, n:], sums[:, :-n], out=limit[:, 1:])
        np.subtract(over[:, 1:], limit[:, 1:], out=over[:, 1:])
        np.multiply(scale[:, n - 1 :], SMA_TIE_TOLERANCE * n, out=limit)
        yield n, over > limit


def _refuse_duplicates(frame: pl.DataFrame) -> None:
    """Raise naming the first repeated (symbol, date) among rows with a close."""
    close, symbol, date = pl.col("close"), pl.col("symbol"), pl.col("date")
    rows = frame.filter(close.is_not_null() & close.is_not_nan())
    repeated = rows.filter((symbol == symbol.shift(1)) & (date == date.shift(1))).head(1)
    if repeated.height:
        raise InvalidInputError(
            f"bars hold more than one row for {repeated['symbol'][0]} on "
            f"{repeated['date'][0]} — expected one row per (symbol, date)"
        )
    raise AssertionError("sorted bars out of order")  # pragma: no cover - cannot happen


def _new_highs_lows(
    prices: np.ndarray, window: int, scratch: _Scratch
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the grid, from column ``window`` on: close > max and close < min of the
    ``window`` closes before it (empty when the rows are not longer than ``window``)."""
    if prices.shape[1] <= window:
        empty = np.zeros((prices.shape[0], 0), dtype=bool)
        return empty, empty
    before, today = prices[:, :-1], prices[:, window:]
    buffers = (scratch.get("even", before.shape), scratch.get("odd", before.shape))
    high = today > _window_extreme(before, window, np.maximum, buffers)
    low = today < _window_extreme(before, window, np.minimum, buffers)
    return high, low


def _window_extreme(
    values: np.ndarray, window: int, fn: np.ufunc, buffers: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """``fn`` over ``values[:, j : j + window]`` for every ``j``, along each row.

    By doubling: extremes over spans of 1, 2, 4, … values, then two overlapping spans
    for the rest — ``log2(window)`` vectorised passes, written alternately into the two
    ``buffers``. (van Herk / Gil-Werman is O(1) per value, but its running
    ``accumulate`` passes are sequential and measured about twice as slow for a 252-day
    window.)
    """
    span, extreme, step = 1, values, 0
    while span < window:
        rest = min(span, window - span)  # the last pass overlaps two spans
        width = extreme.shape[1] - rest
        out = buffers[step % 2][:, :width]
        fn(extreme[:, :width], extreme[:, rest:], out=out)
        span, extreme, step = span + rest, out, step + 1
    return extreme


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
