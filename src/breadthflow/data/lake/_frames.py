"""Pure frame logic of the lake: conform incoming bars to the schema, merge into a partition.

Nothing here touches a file. :func:`conform_bars` turns whatever a caller hands to
``Lake.upsert`` into a frame with exactly the columns and dtypes of
:func:`~breadthflow.core.models.bar_schema` (or raises a one-line
:class:`~breadthflow.core.errors.InvalidInputError`); :func:`merge_partition` applies one
symbol's new bars to the stored ones and counts what changed.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, bar_schema, normalize_symbol

# Columns that identify a bar, and the one that records when we stored it. Every other
# column is a "value": a row is unchanged when all its values equal the stored ones.
KEY_COLUMNS = ("symbol", "date")
STAMP_COLUMN = "ingested_at"


def value_columns(timeframe: Timeframe) -> list[str]:
    """The columns compared to decide whether a re-sent bar changed."""
    return [c for c in bar_schema(timeframe) if c not in (*KEY_COLUMNS, STAMP_COLUMN)]


# --- validation -----------------------------------------------------------------------


def conform_bars(bars: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """Return ``bars`` with exactly the columns and dtypes of ``bar_schema(timeframe)``.

    Dtypes are cast only where no information is lost (integers or Float32 to Float64,
    Categorical to String, a tz-aware timestamp to UTC, a midnight timestamp to a date).
    Symbols are upper-cased and validated with ``normalize_symbol`` because each one
    becomes a folder name. Null keys are rejected; duplicate keys are rejected by
    :func:`split_by_symbol`, which every upsert calls next.

    >>> import datetime as dt
    >>> frame = conform_bars(pl.DataFrame({
    ...     "symbol": ["aapl"], "date": [dt.date(2024, 1, 2)], "open": [1], "high": [1.0],
    ...     "low": [1.0], "close": [1.0], "volume": [100], "adj_factor": [1.0],
    ...     "source": ["test"], "ingested_at": [None]}), Timeframe.D1)
    >>> frame["symbol"].to_list(), frame["volume"].dtype
    (['AAPL'], Float64)
    """
    if not isinstance(bars, pl.DataFrame):
        raise InvalidInputError(
            f"bars must be a Polars DataFrame, got {type(bars).__name__} — "
            "build one with pl.DataFrame(...)"
        )
    schema = bar_schema(timeframe)
    missing = [name for name in schema if name not in bars.columns]
    if missing:
        raise InvalidInputError(
            f"bars are missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)} — expected {', '.join(schema)}"
        )
    extra = [name for name in bars.columns if name not in schema]
    if extra:
        raise InvalidInputError(
            f"bars have unexpected column{'s' if len(extra) > 1 else ''} "
            f"{', '.join(repr(e) for e in extra)} — the lake stores exactly {', '.join(schema)}"
        )
    frame = pl.DataFrame(
        [_conform_column(bars.get_column(name), want, timeframe) for name, want in schema.items()]
    )
    for key in KEY_COLUMNS:
        nulls = frame.get_column(key).null_count()
        if nulls:
            raise InvalidInputError(
                f"{nulls} bar{'s have' if nulls > 1 else ' has'} a null '{key}' — "
                "every bar needs a symbol and a date"
            )
    return _normalize_symbols(frame)


def split_by_symbol(frame: pl.DataFrame) -> tuple[list[tuple[str, pl.DataFrame]], bool]:
    """One ``(symbol, bars)`` per symbol, rejecting duplicate ``(symbol, date)`` rows.

    Returns ``(parts, contiguous)``. ``contiguous`` is True when each symbol's rows
    already form one block of ``frame`` in increasing date order — the usual shape of
    provider output — and then ``parts`` are consecutive zero-copy slices, in frame
    order (so the caller can slice one Arrow conversion of ``frame`` the same way);
    otherwise they are in symbol order. That case is detected with two linear passes;
    only other inputs pay for hashing (``partition_by``).
    Duplicates are rejected rather than resolved: silently picking one of two different
    bars for the same date would hide a bug upstream.
    """
    if frame.is_empty():
        return [], True
    runs = frame.get_column("symbol").rle().struct.unnest()
    symbol, date = pl.col("symbol"), pl.col("date")
    if runs.get_column("value").n_unique() == runs.height:
        # Rows grouped by symbol with strictly increasing dates cannot repeat a key.
        increasing = frame.select(
            ((symbol != symbol.shift(1)).fill_null(True) | (date > date.shift(1))).all()
        ).item()
        if increasing:
            offset, parts = 0, []
            for length, value in runs.iter_rows():
                parts.append((value, frame.slice(offset, length)))
                offset += length
            return parts, True
    groups = frame.partition_by("symbol", as_dict=True, maintain_order=True)
    parts = sorted(((str(key[0]), part) for key, part in groups.items()), key=lambda p: p[0])
    repeated = [
        (sym, part) for sym, part in parts if part.get_column("date").n_unique() < part.height
    ]
    if repeated:
        count = sum(p.height - p.get_column("date").n_unique() for _, p in repeated)
        sym, part = repeated[0]
        example = part.filter(date.is_duplicated()).get_column("date").item(0)
        raise InvalidInputError(
            f"{count} bar{'s repeat' if count > 1 else ' repeats'} a (symbol, date) already in the "
            f"input, e.g. {sym} {example} — keep one bar per symbol and date "
            "(e.g. .unique(['symbol', 'date'], keep='last'))"
        )
    return parts, False


def _conform_column(series: pl.Series, want: pl.DataType, timeframe: Timeframe) -> pl.Series:
    """Cast one column to ``want`` if that loses nothing, else raise naming the column."""
    name, have = series.name, series.dtype
    if have == want:
        return series
    if have == pl.Null:  # an all-null column: any dtype holds it
        return series.cast(want)

    def wrong(hint: str = "") -> InvalidInputError:
        return InvalidInputError(
            f"column '{name}' has dtype {have} — expected {want}" + (f" ({hint})" if hint else "")
        )

    try:
        if want == pl.Float64:
            if have.is_numeric():
                return series.cast(pl.Float64, strict=True)
            raise wrong("numbers only")
        if want == pl.String:
            if isinstance(have, pl.Categorical | pl.Enum):
                return series.cast(pl.String)
            raise wrong()
        if want == pl.Date:
            if isinstance(have, pl.Datetime):
                # A daily bar keyed by a timestamp is fine if it is a midnight in its own
                # zone (how pandas and many vendors write dates); anything else is not a day.
                if (series.dt.time().drop_nulls() != dt.time(0)).any():
                    raise wrong("daily bars need midnight timestamps or dates")
                return series.dt.date()
            raise wrong()
        if isinstance(want, pl.Datetime):
            if isinstance(have, pl.Datetime):
                if have.time_zone is None:
                    raise wrong(
                        "timestamps without a time zone are ambiguous; if they are UTC, "
                        "attach it with .dt.replace_time_zone('UTC')"
                    )
                if (
                    have.time_unit == "ns"
                    and (series.dt.nanosecond().drop_nulls() % 1000 != 0).any()
                ):
                    raise wrong("sub-microsecond timestamps cannot be stored")
                return series.dt.convert_time_zone("UTC").cast(want)
            raise wrong()
    except pl.exceptions.PolarsError as exc:
        raise wrong(str(exc).splitlines()[0]) from None
    raise wrong()


def _normalize_symbols(frame: pl.DataFrame) -> pl.DataFrame:
    # Each symbol becomes a folder name, so it must pass the same check as user input
    # (this rejects '..', '/', ';' and the empty string) before anything is written.
    raw = frame.get_column("symbol").unique().to_list()
    mapping = {value: normalize_symbol(value) for value in raw}
    if all(key == value for key, value in mapping.items()):
        return frame
    return frame.with_columns(pl.col("symbol").replace_strict(mapping, return_dtype=pl.String))


# --- merging --------------------------------------------------------------------------


def merge_partition(
    stored: pl.DataFrame | None, new: pl.DataFrame, timeframe: Timeframe
) -> tuple[pl.DataFrame | None, int, int, int]:
    """Apply ``new`` bars of one symbol to its ``stored`` bars (last write wins per date).

    Returns ``(merged, inserted, updated, unchanged)``; ``merged`` is None when nothing
    changed, so the caller can skip rewriting the partition. A re-sent bar whose values
    equal the stored ones (``ingested_at`` aside) is unchanged and keeps its stored
    ``ingested_at`` — that column says when the value first arrived — so the result of an
    upsert does not depend on whether some other bar of the partition changed.
    Both frames must be conformed (unique dates); the result is sorted by date.
    """
    if stored is None or stored.is_empty():
        return _by_date(new), new.height, 0, 0
    # Fast paths for the daily routine — bars after (or, backfilling, before) everything
    # stored — where no bar can match a stored one.
    new_dates, old_dates = new.get_column("date"), stored.get_column("date")
    if new_dates.min() > old_dates.max():  # type: ignore[operator]
        return pl.concat([stored, _by_date(new)]), new.height, 0, 0
    if new_dates.max() < old_dates.min():  # type: ignore[operator]
        return pl.concat([_by_date(new), stored]), new.height, 0, 0
    values = value_columns(timeframe)
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}__old")) for c in values)
    # maintain_order: the flags are aligned with the rows of ``new`` by position. The
    # in-memory engine: for a few thousand rows, starting the streaming engine costs
    # more than the join itself.
    flags = (
        new.lazy()
        .join(
            stored.lazy().select("date", *values, pl.lit(True).alias("__stored")),
            on="date",
            how="left",
            suffix="__old",
            validate="1:1",
            maintain_order="left",
        )
        .select(
            is_new=pl.col("__stored").is_null(),
            is_same=pl.col("__stored").is_not_null() & same,
        )
        .collect(engine="in-memory")
    )
    inserted = int(flags.get_column("is_new").sum())
    unchanged = int(flags.get_column("is_same").sum())
    updated = new.height - inserted - unchanged
    if inserted == 0 and updated == 0:
        return None, inserted, updated, unchanged
    # Unchanged re-sent bars keep their stored row; new and changed bars replace it.
    changed = new.filter(~flags.get_column("is_same"))
    kept = stored.join(changed.select("date"), on="date", how="anti")
    merged = _by_date(pl.concat([kept, changed], how="vertical"))
    return merged, inserted, updated, unchanged


def _by_date(frame: pl.DataFrame) -> pl.DataFrame:
    # Incoming bars are nearly always in date order already; checking is cheaper.
    return frame if frame.get_column("date").is_sorted() else frame.sort("date")
