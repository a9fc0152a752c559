"""Daily bars as dates × symbols matrices: the backtest kernels' input.

A :class:`PriceMatrix` holds open, high, low and close as ``float64`` arrays of shape
``(T, N)`` — one row per date of the union calendar, one column per symbol (sorted) —
with NaN where a symbol has no bar that date (before its listing, after its delisting,
a missing session). Signals are aligned to the same grid with :meth:`PriceMatrix.align`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from breadthflow.core.errors import InvalidInputError

__all__ = ["PRICE_FIELDS", "PriceMatrix"]

PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class PriceMatrix:
    """Open/high/low/close of ``N`` symbols over ``T`` dates (NaN where there is no bar).

    >>> bars = pl.DataFrame({"symbol": ["B", "A", "A"],
    ...     "date": [dt.date(2024, 1, 3), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
    ...     "open": [5.0, 1.0, 2.0], "high": [5.0, 1.0, 2.0],
    ...     "low": [5.0, 1.0, 2.0], "close": [5.0, 1.0, 2.0]})
    >>> m = PriceMatrix.from_bars(bars)
    >>> m.symbols, m.close.tolist()
    (('A', 'B'), [[1.0, nan], [2.0, 5.0]])
    """

    dates: np.ndarray  # datetime64[D], (T,), strictly increasing
    symbols: tuple[str, ...]  # (N,)
    open: np.ndarray  # float64 (T, N)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __post_init__(self) -> None:
        t, n = len(self.dates), len(self.symbols)
        for name in PRICE_FIELDS:
            array = getattr(self, name)
            if array.shape != (t, n):
                raise ValueError(f"{name} has shape {array.shape}, expected {(t, n)}")
        if t > 1:
            days = self.dates.astype("datetime64[D]", copy=False).view(np.int64)
            if not (days[1:] > days[:-1]).all():
                raise ValueError("dates must be strictly increasing")

    @property
    def shape(self) -> tuple[int, int]:
        """``(T, N)``: dates × symbols."""
        return self.close.shape

    @classmethod
    def from_bars(cls, bars: pl.DataFrame) -> PriceMatrix:
        """Pivot long-format bars (``symbol, date, open, high, low, close[, volume]``).

        Rows must be unique per ``(symbol, date)`` and carry all four prices; the first
        offending row is named in an :class:`InvalidInputError` otherwise.
        """
        present = set(bars.columns)
        missing = [c for c in ("symbol", "date", *PRICE_FIELDS) if c not in present]
        if missing:
            raise InvalidInputError(
                f"bars lack column(s) {', '.join(missing)} — expected symbol, date, "
                "open, high, low, close"
            )
        single = _one_clean_symbol(bars)
        if single is not None:
            return single
        frame = bars.select(
            pl.col("symbol").cast(pl.String),
            pl.col("date").cast(pl.Date),
            *(pl.col(c).cast(pl.Float64) for c in PRICE_FIELDS),
        )
        bad = frame.filter(
            pl.any_horizontal(pl.col(c).is_null() | pl.col(c).is_nan() for c in PRICE_FIELDS)
            | pl.col("symbol").is_null()
            | pl.col("date").is_null()
        )
        if bad.height:
            row = bad.row(0, named=True)
            raise InvalidInputError(
                f"bar {row['symbol']} {row['date']} lacks a price — every bar needs "
                "open, high, low and close (leave the row out for a missing session)"
            )
        dup = frame.filter(pl.struct("symbol", "date").is_duplicated())
        if dup.height:
            row = dup.row(0, named=True)
            raise InvalidInputError(
                f"duplicate bar {row['symbol']} {row['date']} — one row per (symbol, date)"
            )
        # Dense ranks are the matrix positions: symbols and dates both come out sorted.
        frame = frame.with_columns(
            pl.col("symbol").rank("dense").cast(pl.Int64).sub(1).alias("_col"),
            pl.col("date").rank("dense").cast(pl.Int64).sub(1).alias("_row"),
        )
        symbols = tuple(frame["symbol"].unique().sort().to_list())
        dates = frame["date"].unique().sort().to_numpy().astype("datetime64[D]")
        rows, cols = frame["_row"].to_numpy(), frame["_col"].to_numpy()
        arrays = {}
        for name in PRICE_FIELDS:
            array = np.full((len(dates), len(symbols)), np.nan)
            array[rows, cols] = frame[name].to_numpy()
            arrays[name] = array
        return cls(dates=dates, symbols=symbols, **arrays)

    @classmethod
    def from_arrays(
        cls,
        symbol: str,
        dates: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
    ) -> PriceMatrix:
        """One symbol's bars from 1-D arrays (dates strictly increasing) — no frame, no
        pivot. The same checks as :meth:`from_bars`: every bar needs all four prices.

        >>> m = PriceMatrix.from_arrays("A", np.array(["2024-01-02", "2024-01-03"],
        ...     dtype="datetime64[D]"), *[np.array([1.0, 2.0])] * 4)
        >>> m.symbols, m.close.tolist()
        (('A',), [[1.0], [2.0]])
        """
        days = np.asarray(dates, dtype="datetime64[D]")
        fields = [np.array(a, dtype=np.float64).reshape(-1, 1) for a in (open, high, low, close)]
        for name, array in zip(PRICE_FIELDS, fields, strict=True):
            if days.ndim != 1 or array.shape[0] != days.shape[0]:
                raise InvalidInputError(
                    f"{name} has {array.size} values for {days.size} dates — expected one "
                    "1-D array per field, one value per date"
                )
            bad = np.flatnonzero(np.isnan(array[:, 0]))
            if len(bad):
                raise InvalidInputError(
                    f"bar {symbol} {days[bad[0]]} lacks a price — every bar needs open, high, "
                    "low and close (leave the row out for a missing session)"
                )
        if np.isnat(days).any():
            raise InvalidInputError(f"bars of {symbol} have a missing date")
        steps = np.flatnonzero(days[1:] <= days[:-1])
        if len(steps):
            day = days[steps[0] + 1]
            if (days == day).sum() > 1:
                raise InvalidInputError(
                    f"duplicate bar {symbol} {day} — one row per (symbol, date)"
                )
            raise InvalidInputError(f"bars of {symbol} are not sorted by date (at {day})")
        return cls(days, (symbol,), *fields)

    def between(self, start: dt.date, end: dt.date) -> PriceMatrix:
        """The rows with ``start <= date <= end`` (all symbols kept)."""
        lo = self.index_of(start)
        hi = int(np.searchsorted(self.dates, np.datetime64(end, "D"), side="right"))
        return PriceMatrix(
            dates=self.dates[lo:hi],
            symbols=self.symbols,
            **{name: getattr(self, name)[lo:hi] for name in PRICE_FIELDS},
        )

    def index_of(self, day: dt.date) -> int:
        """Position of the first date ``>= day`` (``T`` when every date is earlier)."""
        return int(np.searchsorted(self.dates, np.datetime64(day, "D"), side="left"))

    def select(self, symbols: list[str] | tuple[str, ...]) -> PriceMatrix:
        """The given symbols' columns, in the given order."""
        where = {s: i for i, s in enumerate(self.symbols)}
        unknown = [s for s in symbols if s not in where]
        if unknown:
            raise InvalidInputError(f"symbol(s) {', '.join(unknown)} not in the price matrix")
        idx = [where[s] for s in symbols]
        return PriceMatrix(
            dates=self.dates,
            symbols=tuple(symbols),
            **{name: getattr(self, name)[:, idx] for name in PRICE_FIELDS},
        )

    def align(self, frame: pl.DataFrame, column: str, fill: object = False) -> np.ndarray:
        """A long ``symbol, date, <column>`` frame as a ``(T, N)`` array on this grid.

        Cells without a row (or with a null) get ``fill``; rows for dates or symbols not in
        the matrix are ignored. Booleans (entries/exits) come back as ``bool``.

        >>> m = PriceMatrix.from_bars(pl.DataFrame({"symbol": ["A", "A"],
        ...     "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
        ...     "open": [1.0, 2.0], "high": [1.0, 2.0], "low": [1.0, 2.0], "close": [1.0, 2.0]}))
        >>> m.align(pl.DataFrame({"symbol": ["A"], "date": [dt.date(2024, 1, 3)],
        ...     "buy": [True]}), "buy").tolist()
        [[False], [True]]
        """
        values = frame.select(
            pl.col("symbol").cast(pl.String), pl.col("date").cast(pl.Date), pl.col(column)
        ).filter(pl.col(column).is_not_null())
        is_bool = frame.schema[column] == pl.Boolean
        out = np.full(self.shape, fill, dtype=bool if is_bool else np.float64)
        if values.height == 0:
            return out
        grid = values.join(
            pl.DataFrame({"symbol": list(self.symbols), "_col": range(len(self.symbols))}),
            on="symbol",
        ).join(
            pl.DataFrame({"date": self.dates, "_row": range(len(self.dates))}).with_columns(
                pl.col("date").cast(pl.Date)
            ),
            on="date",
        )
        out[grid["_row"].to_numpy(), grid["_col"].to_numpy()] = grid[column].to_numpy()
        return out


def _one_clean_symbol(bars: pl.DataFrame) -> PriceMatrix | None:
    """:meth:`PriceMatrix.from_bars` without the pivot, for the common single-symbol
    frame: ``None`` unless the bars are one symbol, dates strictly increasing, no
    missing value — anything else takes the general path (which sorts, and names the
    offending row in its errors), so both give the same matrix."""
    n = bars.height
    symbol = bars.get_column("symbol")
    if n == 0 or symbol.dtype != pl.String or symbol.null_count():
        return None
    first = symbol[0]
    # Sorted with equal ends: every value is the first.
    if n > 1 and not (symbol[-1] == first and symbol.is_sorted()):
        return None
    date = bars.get_column("date")
    if date.dtype != pl.Date or date.null_count():
        return None
    days = np.array(date.to_numpy(), dtype="datetime64[D]")
    steps = days.view(np.int64)
    if n > 1 and not (steps[1:] > steps[:-1]).all():
        return None
    prices = np.empty((len(PRICE_FIELDS), n))
    for i, name in enumerate(PRICE_FIELDS):
        column = bars.get_column(name)
        if column.null_count() or not column.dtype.is_float():
            return None
        prices[i] = column.to_numpy()
    if np.isnan(prices).any():
        return None
    return PriceMatrix(days, (first,), *(row.reshape(-1, 1) for row in prices))
