"""The kernels' output arrays are reused from scan to scan, never while anything uses them."""

from __future__ import annotations

import datetime as dt
import threading
import time

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.scan import _buffers
from breadthflow.scan.formula import compile_formula

BIG = _buffers.MIN_BYTES // 8  # float64 items in the smallest pooled array


@pytest.fixture(autouse=True)
def empty_pool():
    _buffers.release()
    yield
    _buffers.release()


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_an_array_is_reused_only_once_nothing_holds_it() -> None:
    first = _buffers.empty(BIG)
    first[:] = 1.0
    held = pl.Series(first, nan_to_null=True)  # built on the array without a copy
    where = address(first)
    del first
    second = _buffers.empty(BIG)
    assert address(second) != where  # the series still reads it
    second[:] = 2.0
    assert held.sum() == BIG
    part = second[5:10]
    del second, held
    third = _buffers.empty(BIG)
    assert address(third) == where  # the series is gone
    assert address(_buffers.empty(BIG)) != address(part)  # a slice keeps its base in use


def test_small_arrays_and_arrays_past_the_limit_are_plain_numpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = _buffers.empty(100, np.int32)
    assert small.dtype == np.int32 and small.shape == (100,)
    assert _buffers.kept_bytes() == (0, 0)
    monkeypatch.setattr(_buffers, "LIMIT_BYTES", 3 * BIG * 8)
    kept = [_buffers.empty(BIG) for _ in range(3)]
    beyond = _buffers.empty(BIG)
    assert beyond.shape == (BIG,) and _buffers.kept_bytes() == (3 * BIG * 8, 3 * BIG * 8)
    del kept
    # Over the limit, unused arrays are given back to make room.
    again = _buffers.empty(2 * BIG)
    assert _buffers.kept_bytes()[0] <= 3 * BIG * 8 and again.shape == (2 * BIG,)


def test_unused_arrays_are_given_back_after_an_idle_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_buffers, "IDLE_SECONDS", 0.2)
    kept = _buffers.empty(BIG)
    _buffers.empty(BIG)  # unused at once
    assert _buffers.kept_bytes() == (2 * BIG * 8, BIG * 8)
    deadline = time.monotonic() + 10
    while _buffers.kept_bytes()[0] > BIG * 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _buffers.kept_bytes() == (BIG * 8, BIG * 8)  # the one in use stays
    del kept


def test_threads_never_share_an_array() -> None:
    failures: list[str] = []

    def work(mark: float) -> None:
        for _ in range(30):
            array = _buffers.empty(BIG + int(mark))
            array[:] = mark
            time.sleep(0.001)
            if not (array == mark).all():
                failures.append(f"thread {mark} saw its array overwritten")

    threads = [threading.Thread(target=work, args=(float(k),)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_formula_result_kept_across_later_scans_is_not_overwritten() -> None:
    """The SMA columns of one evaluation live in pooled arrays: a later scan must not reuse
    them while the first result is still held."""
    n = 600_000  # rows: the SMA outputs are pooled arrays
    days = [dt.date(2000, 1, 1) + dt.timedelta(days=k) for k in range(n // 2)]

    def bars(seed: int) -> pl.DataFrame:
        rng = np.random.default_rng(seed)
        return pl.DataFrame(
            {
                "symbol": ["A"] * (n // 2) + ["B"] * (n // 2),
                "date": days * 2,
                "close": 100 + rng.standard_normal(n).cumsum() / 10,
            }
        )

    formula = compile_formula("close > sma(close, 5)")
    first = formula.evaluate(bars(1))
    copy = pl.DataFrame({c: first.get_column(c).to_list() for c in first.columns})
    for seed in (2, 3):
        formula.evaluate(bars(seed))
    assert_frame_equal(first, copy, check_dtypes=False)
