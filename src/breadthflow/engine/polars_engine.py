"""The Polars engine (default): everything in this process, on all its cores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import polars as pl

from breadthflow.core.errors import ConfigError
from breadthflow.indicators.breadth import breadth_table

if TYPE_CHECKING:
    from breadthflow.scan.formula import Formula


class PolarsEngine:
    """Calls the domain functions directly."""

    name = "polars"

    @classmethod
    def from_url(cls, url: str) -> PolarsEngine:
        if url.strip().lower() != "polars":
            raise ConfigError(f"invalid engine '{url}' — the Polars engine is just 'polars'")
        return cls()

    def describe(self) -> str:
        return "polars (in process)"

    def breadth_table(self, bars: pl.DataFrame, hl_window: int = 252) -> pl.DataFrame:
        return breadth_table(bars, hl_window=hl_window)

    def map_symbols(
        self,
        bars: pl.DataFrame,
        fn: Callable[[pl.DataFrame], pl.DataFrame],
        schema: Mapping[str, pl.DataType] | pl.Schema,
    ) -> pl.DataFrame:
        return fn(bars).select(list(dict(schema)))

    def evaluate_formula(
        self, formula: Formula, bars: pl.DataFrame, breadth: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        return formula.evaluate(bars, breadth)
