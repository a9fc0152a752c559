"""Breadth services: the breadth table of a universe over a date range, from the lake.

One implementation for every interface: the CLI, the API and the pipelines call these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import DateRange, Timeframe
from breadthflow.engine import open_engine
from breadthflow.services.context import AppContext
from breadthflow.services.data import (
    check_output_path,
    resolve_symbols,
    shown_symbols,
    write_frame_atomically,
)

# Only what the breadth table uses: a column-projected read is a fraction of the full bars.
BREADTH_INPUT_COLUMNS = ("symbol", "date", "close", "volume")


def compute_breadth(
    ctx: AppContext,
    start: str | dt.date,
    end: str | dt.date,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
    hl_window: int = 252,
) -> pl.DataFrame:
    """The breadth table (docs/breadth.md) of stored daily bars, one row per date.

    Computed from the bars between ``start`` and ``end`` only — no warm-up before
    ``start`` — so the first date has no advances/declines and the SMA and high/low
    columns fill in as symbols accumulate bars inside the range.

    >>> compute_breadth(ctx, "2009-08-21", "2010-08-20", universe="demo_medium")  # doctest: +SKIP
    """
    if isinstance(hl_window, bool) or not isinstance(hl_window, int) or hl_window < 2:
        raise InvalidInputError(
            f"invalid high/low window {hl_window!r} — expected a whole number of days >= 2"
        )
    period = DateRange.parse(start, end)
    wanted = resolve_symbols(ctx, symbols, universe)
    what = f"universe '{universe.strip()}'" if universe else shown_symbols(wanted)
    bars = ctx.lake.read(
        wanted, Timeframe.D1, period.start, period.end, columns=list(BREADTH_INPUT_COLUMNS)
    )
    if bars.height == 0:
        raise NotFoundError(
            f"no 1d bars stored for {what} between {period.start} and {period.end} — "
            "fetch them first with `breadthflow data fetch`"
        )
    symbol = bars.get_column("symbol")
    # The lake returns bars sorted by symbol: one symbol in all iff the first and last
    # rows share it (finding the distinct symbols of millions of rows takes ~0.2 s).
    if symbol[0] == symbol[-1]:
        present = symbol.unique().sort().to_list()
        raise InvalidInputError(
            f"breadth needs at least 2 symbols with 1d bars between {period.start} and "
            f"{period.end}, but {what} has {len(present)} ({shown_symbols(present)}) — give more "
            "symbols or fetch them with `breadthflow data fetch`"
        )
    # The engine (BREADTHFLOW_ENGINE) runs breadth_table, in process or on Spark.
    return open_engine(ctx.settings.engine).breadth_table(bars, hl_window=hl_window)


def save_breadth(table: pl.DataFrame, output: str | Path) -> Path:
    """Write a breadth table to CSV or Parquet; the file appears complete or not at all."""
    path = check_output_path(output)
    write_frame_atomically(table, path)
    return path
