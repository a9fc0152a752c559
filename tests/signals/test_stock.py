"""Per-symbol strategies against independent references: plain loops and TA-Lib.

Events are compared as sets of ``(symbol, date, signal_type)`` over the whole sample.

Moving averages in the references are exact: prices are quoted in cents, so
``Decimal(repr(close))`` is the price as traded and a close that meets its SMA is a true
tie, which is neither above nor below it. On the sample this happens for a handful of
events (close vs SMA20, SMA10 vs SMA30); float rounding must not decide them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
import talib

from breadthflow.indicators.technical import sma
from breadthflow.signals import MarketData
from breadthflow.signals.base import crossed_above, crossed_below
from breadthflow.signals.market import BreadthComposite
from breadthflow.signals.stock import (
    BreadthFiltered,
    BreadthFilteredParams,
    GoldenCross,
    GoldenCrossParams,
    RsiReversion,
    RsiReversionParams,
)

Event = tuple[str, dt.date, str]


def events(signals: pl.DataFrame) -> set[Event]:
    return set(signals.select("symbol", "date", "signal_type").iter_rows())


def by_symbol(bars: pl.DataFrame) -> dict[str, tuple[list[dt.date], list[float]]]:
    series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    rows = bars.sort("symbol", "date").select("symbol", "date", "close").iter_rows()
    for symbol, day, close in rows:
        series[symbol][0].append(day)
        series[symbol][1].append(close)
    return dict(series)


def exact(closes: list[float]) -> list[Decimal]:
    """The prices as quoted (a float's shortest repr is its decimal quote)."""
    return [Decimal(repr(c)) for c in closes]


def loop_sma(closes: list[Decimal], n: int) -> list[Decimal | None]:
    return [None if i + 1 < n else sum(closes[i + 1 - n : i + 1]) / n for i in range(len(closes))]


def crosses(
    symbol: str,
    dates: list[dt.date],
    x: list,
    level: Callable[[int], float | Decimal | None],
) -> set[Event]:
    """BUY where x moves from at/below level to above it, SELL from at/above to below."""
    out: set[Event] = set()
    for t in range(1, len(x)):
        now, prev, lnow, lprev = x[t], x[t - 1], level(t), level(t - 1)
        if None in (now, prev, lnow, lprev):
            continue
        if now > lnow and prev <= lprev:
            out.add((symbol, dates[t], "BUY"))
        if now < lnow and prev >= lprev:
            out.add((symbol, dates[t], "SELL"))
    return out


def kinds(found: set[Event]) -> set[str]:
    return {kind for _, _, kind in found}


# --- golden_cross -----------------------------------------------------------------------


@pytest.mark.parametrize("fast, slow", [(10, 30), (50, 200)])
def test_golden_cross_matches_loop_reference(fast: int, slow: int, market_data: MarketData) -> None:
    expected: set[Event] = set()
    for symbol, (dates, closes) in by_symbol(market_data.bars).items():
        f, s = loop_sma(exact(closes), fast), loop_sma(exact(closes), slow)
        expected |= crosses(symbol, dates, f, lambda t, s=s: s[t])

    got = events(GoldenCross(GoldenCrossParams(fast=fast, slow=slow)).generate(market_data))

    assert kinds(expected) == {"BUY", "SELL"}
    assert got == expected


def test_golden_cross_factors_are_the_moving_averages(market_data: MarketData) -> None:
    signals = GoldenCross(GoldenCrossParams(fast=10, slow=30)).generate(market_data)

    assert signals.height > 100
    for row in signals.head(200).iter_rows(named=True):
        f = row["factors"]
        assert (f["fast_sma"] > f["slow_sma"]) == (row["signal_type"] == "BUY")
        assert row["strength"] == pytest.approx(f["fast_sma"] / f["slow_sma"] - 1, abs=1e-12)


# --- rsi_reversion ----------------------------------------------------------------------


def talib_rsi(closes: list[float], period: int) -> list[float | None]:
    values = talib.RSI(np.asarray(closes, dtype=float), period)
    return [None if np.isnan(v) else float(v) for v in values]


@pytest.mark.parametrize(
    "params", [{}, {"period": 7, "oversold": 25.0, "overbought": 80.0}], ids=str
)
def test_rsi_reversion_matches_talib_crosses(params: dict, market_data: MarketData) -> None:
    p = RsiReversionParams.model_validate(params)
    expected: set[Event] = set()
    near_ties = 0
    for symbol, (dates, closes) in by_symbol(market_data.bars).items():
        r = talib_rsi(closes, p.period)
        buys = crosses(symbol, dates, r, lambda t: p.oversold)
        sells = crosses(symbol, dates, r, lambda t: p.overbought)
        expected |= {e for e in buys if e[2] == "BUY"} | {e for e in sells if e[2] == "SELL"}
        near_ties += sum(
            1 for v in r if v is not None and min(abs(v - p.oversold), abs(v - p.overbought)) < 1e-6
        )

    got = events(RsiReversion(p).generate(market_data))

    # Ours equals TA-Lib to 1e-9, so only an RSI at a threshold could be called differently.
    assert near_ties == 0
    assert kinds(expected) == {"BUY", "SELL"}
    assert got == expected


def test_rsi_reversion_signals_carry_the_rsi_extreme(market_data: MarketData) -> None:
    p = RsiReversionParams()
    signals = RsiReversion(p).generate(market_data)

    buys = signals.filter(pl.col("signal_type") == "BUY")
    sells = signals.filter(pl.col("signal_type") == "SELL")
    assert buys.height and sells.height
    assert all(f["rsi_low"] <= p.oversold < f["rsi"] for f in buys["factors"])
    assert all(f["rsi_high"] >= p.overbought > f["rsi"] for f in sells["factors"])
    assert (signals["confidence"] >= 0.5).all()


# --- ties: a close that meets its SMA exactly -------------------------------------------


def sma_cross_signals(closes: list[float], n: int) -> list[str]:
    """crossed_above / crossed_below of the closes through their own n-bar SMA."""
    frame = pl.DataFrame({"close": closes}).with_columns(sma(pl.col("close"), n).alias("sma"))
    close, trend = pl.col("close"), pl.col("sma")
    flags = frame.select(buy=crossed_above(close, trend), sell=crossed_below(close, trend))
    return ["BUY" if b else "SELL" if s else "" for b, s in flags.iter_rows()]


def test_close_rising_from_an_exact_tie_with_its_sma_is_a_buy() -> None:
    # The SMA3 on bar 2 is (10.04 + 10.06 + 10.05) / 3 = 10.05 exactly; as floats it comes
    # out a hair below 10.05, which would make bar 2 "above" and swallow the cross on bar 3.
    closes = [10.04, 10.06, 10.05, 10.06]

    assert sma_cross_signals(closes, 3) == ["", "", "", "BUY"]


def test_close_meeting_its_sma_exactly_is_not_a_sell() -> None:
    # Bar 3: SMA3 = (10.0 + 10.06 + 10.03) / 3 = 10.03 = the close, a tie, not a cross below.
    closes = [10.1, 10.0, 10.06, 10.03]

    assert sma_cross_signals(closes, 3) == ["", "", "", ""]


# --- breadth_filtered -------------------------------------------------------------------


@pytest.fixture(scope="module")
def filtered_params() -> BreadthFilteredParams:
    return BreadthFilteredParams()


@pytest.fixture(scope="module")
def filtered(market_data: MarketData, filtered_params: BreadthFilteredParams) -> pl.DataFrame:
    return BreadthFiltered(filtered_params).generate(market_data)


@pytest.fixture(scope="module")
def sma_crosses(market_data: MarketData, filtered_params: BreadthFilteredParams) -> set[Event]:
    """Every cross of a close through its own SMA, whatever the market."""
    found: set[Event] = set()
    for symbol, (dates, closes) in by_symbol(market_data.bars).items():
        quoted = exact(closes)
        trend = loop_sma(quoted, filtered_params.sma)
        found |= crosses(symbol, dates, quoted, lambda t, trend=trend: trend[t])
    return found


def test_breadth_filtered_buys_only_in_a_bullish_regime(
    filtered: pl.DataFrame, filtered_params: BreadthFilteredParams
) -> None:
    buys = filtered.filter(pl.col("signal_type") == "BUY")

    assert buys.height > 0
    assert all(f["regime_score"] > filtered_params.regime_threshold for f in buys["factors"])


def test_breadth_filtered_buys_are_sma_crosses_in_a_bullish_regime(
    filtered: pl.DataFrame,
    filtered_params: BreadthFilteredParams,
    sma_crosses: set[Event],
    breadth: pl.DataFrame,
) -> None:
    regime = BreadthComposite(filtered_params.regime).scores(breadth)
    bullish = {
        day for day, score in regime.select("date", "score").iter_rows()
        if score is not None and score > filtered_params.regime_threshold
    }  # fmt: skip
    expected = {(s, d, k) for s, d, k in sma_crosses if k == "BUY" and d in bullish}

    got = {e for e in events(filtered) if e[2] == "BUY"}

    assert expected < {e for e in sma_crosses if e[2] == "BUY"}  # the filter removes some
    assert got == expected


def test_breadth_filtered_sells_whatever_the_regime(
    filtered: pl.DataFrame, sma_crosses: set[Event]
) -> None:
    sells = filtered.filter(pl.col("signal_type") == "SELL")

    assert {e for e in events(filtered) if e[2] == "SELL"} == {
        e for e in sma_crosses if e[2] == "SELL"
    }
    bearish = [f for f in sells["factors"] if f["regime_score"] is None or f["regime_score"] <= 0]
    assert bearish


def test_breadth_filtered_regime_threshold_is_applied(market_data: MarketData) -> None:
    strict = BreadthFiltered(BreadthFilteredParams(regime_threshold=0.3)).generate(market_data)
    buys = strict.filter(pl.col("signal_type") == "BUY")

    assert buys.height > 0
    assert min(f["regime_score"] for f in buys["factors"]) > 0.3
