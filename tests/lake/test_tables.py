"""Result tables (backtest equity, trades …) in the lake: local and S3 alike."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.errors import InvalidInputError
from tests.lake._helpers import Store

FRAME = pl.DataFrame(
    {"date": [dt.date(2020, 1, 2), dt.date(2020, 1, 3)], "equity": [100.0, 101.5],
     "symbol": ["A", None]}
)  # fmt: skip


def test_a_table_reads_back_exactly(store: Store) -> None:
    store.open().write_table("results/backtests/7/equity.parquet", FRAME)

    assert_frame_equal(store.open().read_table("results/backtests/7/equity.parquet"), FRAME)


def test_writing_again_replaces_the_whole_table(store: Store) -> None:
    key = "results/backtests/7/equity.parquet"
    store.open().write_table(key, FRAME)
    store.open().write_table(key, FRAME.head(1))

    assert store.open().read_table(key).height == 1


def test_a_missing_table_is_none(store: Store) -> None:
    assert store.open().read_table("results/backtests/404/equity.parquet") is None


def test_tables_do_not_show_up_as_bars(store: Store) -> None:
    store.open().write_table("results/backtests/1/trades.parquet", FRAME)

    assert store.open().symbols() == [] and store.open().timeframes() == []


@pytest.mark.parametrize(
    "key", ["../escape.parquet", "/abs/path.parquet", "results/x.csv", "results//x.parquet",
            "results/../../x.parquet", ""],
)  # fmt: skip
def test_keys_that_could_leave_the_lake_are_refused(store: Store, key: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid table key"):
        store.open().write_table(key, FRAME)
