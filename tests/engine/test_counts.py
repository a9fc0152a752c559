"""The split a distributed engine relies on: breadth counts add up over symbol groups."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from breadthflow.indicators.breadth import (
    COUNT_COLUMNS,
    breadth_counts,
    breadth_from_counts,
    breadth_table,
)


def ragged_bars(seed: int = 7, symbols: int = 9, days: int = 80) -> pl.DataFrame:
    """Late starters, early leavers, gaps, null closes, unchanged closes."""
    rng = np.random.default_rng(seed)
    first = dt.date(2024, 1, 1)
    rows = []
    for s in range(symbols):
        start, stop = int(rng.integers(0, 20)), days - int(rng.integers(0, 20))
        price = 50.0
        for d in range(start, stop):
            if rng.random() < 0.08:
                continue  # a gap
            price = round(price + float(rng.choice([-0.5, 0.0, 0.5])), 2)
            close = None if rng.random() < 0.03 else price
            rows.append((f"S{s}", first + dt.timedelta(days=d), close, float(rng.integers(1, 900))))
    return pl.DataFrame(
        rows,
        schema={"symbol": pl.String, "date": pl.Date, "close": pl.Float64, "volume": pl.Float64},
        orient="row",
    )


def test_counts_of_disjoint_symbol_groups_add_up_to_the_whole() -> None:
    bars = ragged_bars()
    groups = [["S0", "S4", "S8"], ["S1", "S2"], ["S3", "S5", "S6", "S7"]]
    parts = [breadth_counts(bars.filter(pl.col("symbol").is_in(g)), 20) for g in groups]
    summed = pl.concat(parts).group_by("date").agg(pl.all().sum()).sort("date")
    assert_frame_equal(summed, breadth_counts(bars, 20))
    assert summed.columns == ["date", *COUNT_COLUMNS]


def test_the_table_from_group_counts_equals_the_table() -> None:
    bars = ragged_bars(seed=11)
    parts = [
        breadth_counts(bars.filter(pl.col("symbol").is_in(g)), 10)
        for g in (["S0", "S1", "S2", "S3"], ["S4", "S5", "S6", "S7", "S8"])
    ]
    # concatenated, unsummed, out of order: rows of one date are added up
    assert_frame_equal(
        breadth_from_counts(pl.concat(parts[::-1])), breadth_table(bars, hl_window=10)
    )


def test_empty_bars_give_empty_counts_and_table() -> None:
    empty = ragged_bars().head(0)
    assert breadth_counts(empty).height == 0
    assert_frame_equal(breadth_from_counts(breadth_counts(empty)), breadth_table(empty))
