"""Shared inputs of the signal tests: the sample bars and their breadth, loaded once."""

from __future__ import annotations

import polars as pl
import pytest

from breadthflow.data.providers.sample import load_sample
from breadthflow.signals import MarketData

UNIVERSE = "sample"
# A year of data: a 50-day high/low window gives new highs and lows from November on.
HL_WINDOW = 50


@pytest.fixture(scope="session")
def sample_bars() -> pl.DataFrame:
    return load_sample()


@pytest.fixture(scope="session")
def market_data(sample_bars: pl.DataFrame) -> MarketData:
    return MarketData(sample_bars, UNIVERSE, hl_window=HL_WINDOW)


@pytest.fixture(scope="session")
def breadth(market_data: MarketData) -> pl.DataFrame:
    return market_data.breadth.sort("date")
