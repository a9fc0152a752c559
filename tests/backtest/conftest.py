"""Shared inputs of the backtest tests: real AAPL/MSFT/GOOG bars (2010–2012, public domain,
tests/fixtures/bokeh_stocks) and entry/exit matrices of the house strategies on them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from breadthflow.backtest.prices import PriceMatrix
from breadthflow.indicators.technical import rsi, sma
from breadthflow.signals.base import crossed_above, crossed_below

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bokeh_stocks" / "daily.csv"

Signals = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="session")
def stock_bars() -> pl.DataFrame:
    return pl.read_csv(FIXTURE, try_parse_dates=True).sort("symbol", "date")


@pytest.fixture(scope="session")
def stock_prices(stock_bars: pl.DataFrame) -> PriceMatrix:
    return PriceMatrix.from_bars(stock_bars)


def sma_cross_signals(bars: pl.DataFrame, prices: PriceMatrix, fast: int, slow: int) -> Signals:
    """The sma_cross strategy's BUY/SELL conditions (house SMA and cross definitions, per
    symbol over its own bars) aligned on the price grid."""
    f, s = pl.col("fast"), pl.col("slow")
    frame = (
        bars.sort("symbol", "date")
        .with_columns(
            sma(pl.col("close"), fast).over("symbol").alias("fast"),
            sma(pl.col("close"), slow).over("symbol").alias("slow"),
        )
        .with_columns(
            crossed_above(f, s, "symbol").fill_null(False).alias("entry"),
            crossed_below(f, s, "symbol").fill_null(False).alias("exit"),
        )
    )
    return prices.align(frame, "entry"), prices.align(frame, "exit")


def rsi_cross_signals(
    bars: pl.DataFrame, prices: PriceMatrix, low: float = 30.0, high: float = 70.0
) -> Signals:
    """Entry when RSI(14) climbs back above ``low``, exit when it falls back below ``high``."""
    value = pl.col("rsi")
    frame = (
        bars.sort("symbol", "date")
        .with_columns(rsi(pl.col("close"), 14).over("symbol").alias("rsi"))
        .with_columns(
            crossed_above(value, low, "symbol").fill_null(False).alias("entry"),
            crossed_below(value, high, "symbol").fill_null(False).alias("exit"),
        )
    )
    return prices.align(frame, "entry"), prices.align(frame, "exit")


@pytest.fixture(scope="session")
def sma_signals(
    stock_bars: pl.DataFrame, stock_prices: PriceMatrix
) -> Callable[[int, int], Signals]:
    cache: dict[tuple[int, int], Signals] = {}

    def make(fast: int, slow: int) -> Signals:
        if (fast, slow) not in cache:
            cache[fast, slow] = sma_cross_signals(stock_bars, stock_prices, fast, slow)
        return cache[fast, slow]

    return make


@pytest.fixture(scope="session")
def rsi_signals(stock_bars: pl.DataFrame, stock_prices: PriceMatrix) -> Signals:
    return rsi_cross_signals(stock_bars, stock_prices)


@pytest.fixture(scope="session")
def gapped_bars(stock_bars: pl.DataFrame) -> pl.DataFrame:
    """The fixture with holes: GOOG starts trading in April 2010 and MSFT misses ten
    sessions in 2011 and a few single days — NaN cells in the price matrix."""
    return stock_bars.filter(
        ~((pl.col("symbol") == "GOOG") & (pl.col("date") < pl.date(2010, 4, 1)))
        & ~(
            (pl.col("symbol") == "MSFT")
            & (
                pl.col("date").is_between(pl.date(2011, 6, 1), pl.date(2011, 6, 14))
                | pl.col("date").is_in([dt.date(2010, 9, 1), dt.date(2012, 3, 5)])
            )
        )
    )
