"""Polars Series straight from NumPy arrays, for the engine's result frames.

A single-symbol backtest builds about twenty small Series; ``pl.Series(name, array)``
spends ~4 µs of Python per call on checks (masked arrays, byte order, alignment, dtype
inference) that arrays made here never need — together as much as the simulation. For the
arrays the engine makes (C-contiguous, native ``float64``/``int64``/``int32``/``bool``)
:func:`series` calls Polars' own NumPy constructor for the dtype directly (what
``pl.Series`` ends up calling), ~0.7 µs; :func:`strings` does the same for a list of
``str``, and :func:`frame` puts equal-length Series with distinct names together as
``pl.DataFrame(columns)`` does (~1.5 µs instead of ~10).

Those constructors are internal to Polars. They are looked up once and checked against
``pl.Series`` on sample values at import; if one is missing or disagrees (another Polars
version), the function is plain ``pl.Series`` — slower, never wrong.
tests/backtest/test_fast_path.py checks both paths give equal Series.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

__all__ = ["frame", "series", "strings"]

_KINDS = (np.float64, np.int64, np.int32, np.bool_)


def public_series(name: str, values: np.ndarray, nan_to_null: bool = False) -> pl.Series:
    return pl.Series(name, values, nan_to_null=nan_to_null)


def public_strings(name: str, values: list[str]) -> pl.Series:
    return pl.Series(name, values, dtype=pl.String)


def _direct() -> Callable[[str, np.ndarray, bool], pl.Series] | None:
    try:
        from polars.datatypes.constructor import numpy_type_to_constructor

        constructors = {
            kind: numpy_type_to_constructor(np.empty(0, dtype=kind), kind) for kind in _KINDS
        }
        from_pyseries = pl.Series._from_pyseries
    except Exception:  # any change in Polars' internals: the public path
        return None

    def direct(name: str, values: np.ndarray, nan_to_null: bool = False) -> pl.Series:
        kind = values.dtype.type
        if kind not in constructors or values.ndim != 1 or not values.flags.c_contiguous:
            return pl.Series(name, values, nan_to_null=nan_to_null)
        # The third argument is nan_to_null for floats and strict for the others.
        flag = nan_to_null if kind is np.float64 else True
        return from_pyseries(constructors[kind](name, values, flag))

    samples = (
        (np.array([1.5, np.nan, -0.0]), True),
        (np.array([1.5, np.nan, -0.0]), False),
        (np.array([3, -1, 2**40]), False),
        (np.array([19_000, -3], dtype=np.int32), False),
        (np.array([True, False]), False),
        (np.empty(0), False),
    )
    try:
        for values, nan_to_null in samples:
            got = direct("x", values, nan_to_null)
            want = pl.Series("x", values, nan_to_null=nan_to_null)
            if not (got.dtype == want.dtype and got.name == "x" and got.equals(want)):
                return None
    except Exception:
        return None
    return direct


series: Callable[..., pl.Series] = _direct() or public_series


def _direct_strings() -> Callable[[str, list[str]], pl.Series] | None:
    try:
        from polars._plr import PySeries

        new_str = PySeries.new_str
        from_pyseries = pl.Series._from_pyseries

        def direct(name: str, values: list[str]) -> pl.Series:
            return from_pyseries(new_str(name, values, True))

        for values in (["long", "short", "long"], [], ["é", ""]):
            got, want = direct("x", values), pl.Series("x", values, dtype=pl.String)
            if not (got.dtype == pl.String and got.name == "x" and got.equals(want)):
                return None
    except Exception:  # any change in Polars' internals: the public path
        return None
    return direct


strings: Callable[[str, list[str]], pl.Series] = _direct_strings() or public_strings


def public_frame(columns: list[pl.Series]) -> pl.DataFrame:
    return pl.DataFrame(columns)


def _direct_frame() -> Callable[[list[pl.Series]], pl.DataFrame] | None:
    try:
        from polars._plr import PyDataFrame

        from_pydf = pl.DataFrame._from_pydf

        def direct(columns: list[pl.Series]) -> pl.DataFrame:
            return from_pydf(PyDataFrame([column._s for column in columns]))

        columns = [pl.Series("a", [1.5, None]), pl.Series("b", ["x", "y"]), pl.Series("c", [1, 2])]
        if not direct(columns).equals(pl.DataFrame(columns)) or direct([]).shape != (0, 0):
            return None
    except Exception:  # any change in Polars' internals: the public path
        return None
    return direct


frame: Callable[[list[pl.Series]], pl.DataFrame] = _direct_frame() or public_frame
