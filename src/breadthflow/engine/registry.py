"""Compute engines, chosen by ``BREADTHFLOW_ENGINE``.

- ``polars`` (default): the domain functions run in this process
  (:mod:`breadthflow.engine.polars_engine`);
- ``spark-local``, ``spark-local[N]``, ``spark://master:7077``: the same functions run per
  group of symbols on Apache Spark (:mod:`breadthflow.engine.spark`).

Every engine offers the same three operations, with identical results:

- ``breadth_table(bars, hl_window)`` — the universe's breadth table;
- ``map_symbols(bars, fn, schema)`` — a pure per-symbol Polars function over many symbols;
- ``evaluate_formula(formula, bars, breadth)`` — a scan formula over the universe.

>>> engine = open_engine("spark-local[2]")             # doctest: +SKIP
>>> engine.breadth_table(bars, hl_window=252)          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import polars as pl

from breadthflow.core.errors import ConfigError

if TYPE_CHECKING:
    from breadthflow.scan.formula import Formula


class Engine(Protocol):
    name: str

    def describe(self) -> str: ...

    def breadth_table(self, bars: pl.DataFrame, hl_window: int = 252) -> pl.DataFrame: ...

    def map_symbols(
        self,
        bars: pl.DataFrame,
        fn: Callable[[pl.DataFrame], pl.DataFrame],
        schema: Mapping[str, pl.DataType] | pl.Schema,
    ) -> pl.DataFrame: ...

    def evaluate_formula(
        self, formula: Formula, bars: pl.DataFrame, breadth: pl.DataFrame | None = None
    ) -> pl.DataFrame: ...


_OPENERS: dict[str, Callable[[str], Engine]] = {}


def register_engine(scheme: str, opener: Callable[[str], Engine]) -> None:
    """Make ``opener(url)`` the engine for values of ``scheme``."""
    _OPENERS[scheme] = opener


def engine_scheme(url: str) -> str:
    """``polars`` → ``polars``; ``spark-local[4]`` → ``spark-local``; ``spark://m:7077`` →
    ``spark``."""
    text = url.strip().lower()
    if "://" in text:
        return text.split("://", 1)[0]
    return text.split("[", 1)[0]


def open_engine(url: str) -> Engine:
    """The engine for ``url``; an unknown one is one :class:`ConfigError` line."""
    _register_builtins()
    opener = _OPENERS.get(engine_scheme(url))
    if opener is None:
        raise ConfigError(
            f"unknown engine '{url}' (BREADTHFLOW_ENGINE) — expected polars, spark-local, "
            "spark-local[N] or spark://host:7077"
        )
    return opener(url)


def _register_builtins() -> None:
    if _OPENERS:
        return
    from breadthflow.engine.polars_engine import PolarsEngine
    from breadthflow.engine.spark import SparkEngine

    register_engine("polars", PolarsEngine.from_url)
    register_engine("spark-local", SparkEngine.from_url)
    register_engine("spark", SparkEngine.from_url)
