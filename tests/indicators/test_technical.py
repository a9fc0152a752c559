"""Technical indicators: agreement with TA-Lib, causality, warm-up and edge cases.

Tolerance against TA-Lib: ``|ours - talib| <= 1e-9 * max(1, |talib|)`` — absolute for
values below 1 (MACD near zero, volume ratios), relative for larger ones (prices, RSI).
TA-Lib's warm-up NaNs must be exactly our nulls.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.data.providers.sample import load_sample
from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols
from breadthflow.indicators import (
    INDICATORS,
    add_indicators,
    atr,
    bollinger,
    ema,
    highest,
    lowest,
    macd,
    per_symbol,
    roc,
    rsi,
    sma,
    stochastic,
    volume_ratio,
    wma,
)

TOLERANCE = 1e-9
SAMPLE_SYMBOLS = ["AAPL", "MSFT", "C", "XOM"]
BAR_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]


def talib_reference(group: pl.DataFrame) -> dict[str, np.ndarray]:
    """What TA-Lib says for every registry column of one symbol's bars."""
    h, lo, c, v = (group[name].to_numpy() for name in ("high", "low", "close", "volume"))
    line, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    slow_k, slow_d = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    return {
        "sma_20": talib.SMA(c, 20),
        "sma_50": talib.SMA(c, 50),
        "sma_200": talib.SMA(c, 200),
        "ema_20": talib.EMA(c, 20),
        "wma_20": talib.WMA(c, 20),
        "rsi_14": talib.RSI(c, 14),
        "macd": line,
        "macd_signal": signal,
        "macd_hist": hist,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "atr_14": talib.ATR(h, lo, c, 14),
        "stoch_k": slow_k,
        "stoch_d": slow_d,
        "roc_10": talib.ROC(c, 10),
        "highest_20": talib.MAX(h, 20),
        "lowest_20": talib.MIN(lo, 20),
        "volume_ratio_20": v / talib.SMA(v, 20),
    }


def assert_matches_talib(ours: pl.Series, reference: np.ndarray) -> None:
    values = ours.cast(pl.Float64).to_numpy()
    # Our nulls come back as NaN from to_numpy: the warm-up must be exactly TA-Lib's.
    assert np.array_equal(np.isnan(values), np.isnan(reference)), ours.name
    ready = ~np.isnan(reference)
    assert ready.any(), f"{ours.name}: no value after the warm-up"
    error = np.abs(values[ready] - reference[ready]) / np.maximum(1.0, np.abs(reference[ready]))
    assert error.max() <= TOLERANCE, f"{ours.name}: max error {error.max():.3g}"


def all_columns() -> list[str]:
    return [column for item in INDICATORS.values() for column in item.columns]


@pytest.fixture(scope="module")
def sample_bars() -> pl.DataFrame:
    bars = load_sample().filter(pl.col("symbol").is_in(SAMPLE_SYMBOLS)).select(BAR_COLUMNS)
    assert bars["symbol"].n_unique() == len(SAMPLE_SYMBOLS)
    return bars.sort("symbol", "date")


@pytest.fixture(scope="module")
def synthetic_bars() -> pl.DataFrame:
    return generate_bars(synthetic_symbols(6), "2015-01-01", "2016-12-31").select(BAR_COLUMNS)


@pytest.fixture(scope="module")
def sample_with_indicators(sample_bars: pl.DataFrame) -> pl.DataFrame:
    return add_indicators(sample_bars)


@pytest.fixture(scope="module")
def synthetic_with_indicators(synthetic_bars: pl.DataFrame) -> pl.DataFrame:
    return add_indicators(synthetic_bars)


# --- agreement with TA-Lib -----------------------------------------------------------------


@pytest.mark.parametrize("column", all_columns())
def test_matches_talib_on_real_sample_data(sample_with_indicators: pl.DataFrame, column: str):
    for (symbol,), group in sample_with_indicators.group_by("symbol"):
        reference = talib_reference(group)[column]
        assert_matches_talib(group[column].alias(f"{symbol} {column}"), reference)


@pytest.mark.parametrize("column", all_columns())
def test_matches_talib_per_symbol_when_universe_evaluated_together(
    synthetic_with_indicators: pl.DataFrame, column: str
):
    groups = synthetic_with_indicators.partition_by("symbol", as_dict=True)
    assert len(groups) == 6
    for (symbol,), group in groups.items():
        reference = talib_reference(group)[column]
        assert_matches_talib(group[column].alias(f"{symbol} {column}"), reference)


def test_macd_with_other_periods_matches_talib(sample_bars: pl.DataFrame):
    out = sample_bars.with_columns(
        per_symbol(expr).alias(name)
        for name, expr in zip(("m", "s", "h"), macd(pl.col("close"), 5, 35, 5), strict=True)
    )
    for _, group in out.group_by("symbol"):
        references = talib.MACD(group["close"].to_numpy(), 5, 35, 5)
        for name, reference in zip(("m", "s", "h"), references, strict=True):
            assert_matches_talib(group[name], reference)


@pytest.mark.parametrize("n", [2, 5, 30])
def test_other_periods_match_talib(sample_bars: pl.DataFrame, n: int):
    h, lo, c = pl.col("high"), pl.col("low"), pl.col("close")
    exprs = {
        "sma": sma(c, n),
        "ema": ema(c, n),
        "wma": wma(c, n),
        "rsi": rsi(c, n),
        "atr": atr(h, lo, c, n),
        "roc": roc(c, n),
        "bb_upper": bollinger(c, n, 1.5)[0],
        "stoch_d": stochastic(h, lo, c, n, 2, 4)[1],
    }
    out = sample_bars.with_columns(per_symbol(e).alias(name) for name, e in exprs.items())
    for _, group in out.group_by("symbol"):
        gh, gl, gc = (group[name].to_numpy() for name in ("high", "low", "close"))
        references = {
            "sma": talib.SMA(gc, n),
            "ema": talib.EMA(gc, n),
            "wma": talib.WMA(gc, n),
            "rsi": talib.RSI(gc, n),
            "atr": talib.ATR(gh, gl, gc, n),
            "roc": talib.ROC(gc, n),
            "bb_upper": talib.BBANDS(gc, n, 1.5, 1.5, 0)[0],
            "stoch_d": talib.STOCH(gh, gl, gc, n, 2, 0, 4, 0)[1],
        }
        for name, reference in references.items():
            assert_matches_talib(group[name], reference)


# --- causality ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(INDICATORS))
def test_values_up_to_a_date_do_not_depend_on_later_bars(synthetic_bars: pl.DataFrame, name: str):
    indicator = INDICATORS[name]
    full = indicator(synthetic_bars)
    dates = synthetic_bars["date"].unique().sort()
    for cut in (dates[5], dates[40], dates[230], dates[len(dates) // 2], dates[-2]):
        truncated = indicator(synthetic_bars.filter(pl.col("date") <= cut))
        assert_frame_equal(truncated, full.filter(pl.col("date") <= cut), check_exact=True)


# --- warm-up, NaN/inf, division by zero --------------------------------------------------


def test_no_nan_or_inf_anywhere_in_the_whole_sample():
    out = add_indicators(load_sample().select(BAR_COLUMNS))
    bad = out.select(
        pl.col(column).is_nan().sum() + pl.col(column).is_infinite().sum()
        for column in all_columns()
    )
    assert bad.row(0) == (0,) * len(all_columns())


def test_warm_up_is_null_then_values_follow():
    bars = pl.DataFrame({"x": [float(i % 7 + 1) for i in range(60)]})
    x = pl.col("x")
    warm_ups = {
        "sma": (sma(x, 10), 9),
        "ema": (ema(x, 10), 9),
        "wma": (wma(x, 10), 9),
        "rsi": (rsi(x, 10), 10),
        "roc": (roc(x, 10), 10),
        "highest": (highest(x, 10), 9),
        "lowest": (lowest(x, 10), 9),
        "volume_ratio": (volume_ratio(x, 10), 9),
        "atr": (atr(x + 1, x - 1, x, 10), 10),
        "macd": (macd(x, 12, 26, 9)[0], 33),
        "macd_signal": (macd(x, 12, 26, 9)[1], 33),
        "bb_lower": (bollinger(x, 10)[2], 9),
        "stoch_k": (stochastic(x + 1, x - 1, x, 14, 3, 3)[0], 17),
    }
    out = bars.select(expr.alias(name) for name, (expr, _) in warm_ups.items())
    for name, (_, warm_up) in warm_ups.items():
        column = out[name]
        assert column[:warm_up].null_count() == warm_up, name
        assert column[warm_up:].null_count() == 0, name


def test_flat_prices_give_null_where_talib_divides_by_zero():
    flat = pl.DataFrame({"close": [10.0] * 40, "volume": [0.0] * 40})
    c = pl.col("close")
    k, d = stochastic(c, c, c)
    upper, middle, _lower = bollinger(c)
    out = flat.select(
        rsi(c).alias("rsi"),
        k.alias("k"),
        d.alias("d"),
        volume_ratio(pl.col("volume")).alias("volume_ratio"),
        atr(c, c, c).alias("atr"),
        roc(c).alias("roc"),
        (upper - middle).alias("band_width"),
    )
    for name in ("rsi", "k", "d", "volume_ratio"):
        assert out[name].null_count() == 40, name
    assert out["atr"].drop_nulls().to_list() == [0.0] * (40 - 14)
    assert out["roc"].drop_nulls().to_list() == [0.0] * (40 - 10)
    assert out["band_width"].drop_nulls().abs().max() < 1e-12


def test_rate_of_change_from_zero_is_null_not_infinite():
    out = pl.select(roc(pl.lit(pl.Series([0.0, 1.0, 2.0])), 1).alias("roc"))
    assert out["roc"].to_list() == [None, None, 100.0]


def test_rsi_is_100_when_the_price_only_rises():
    out = pl.select(rsi(pl.lit(pl.Series([float(i) for i in range(30)])), 14).alias("rsi"))
    assert out["rsi"].drop_nulls().to_list() == [100.0] * 16


# --- independence between symbols --------------------------------------------------------


def test_one_symbols_values_do_not_depend_on_other_symbols(
    synthetic_bars: pl.DataFrame, synthetic_with_indicators: pl.DataFrame
):
    symbol = synthetic_symbols(6)[3]
    alone = add_indicators(synthetic_bars.filter(pl.col("symbol") == symbol))
    together = synthetic_with_indicators.filter(pl.col("symbol") == symbol)
    assert_frame_equal(alone, together, check_exact=True)


def test_symbols_need_not_be_contiguous_only_date_ordered(synthetic_bars: pl.DataFrame):
    interleaved = synthetic_bars.sort("date", "symbol")
    out = add_indicators(interleaved).sort("symbol", "date")
    assert_frame_equal(out, add_indicators(synthetic_bars), check_exact=True)


# --- leading nulls (an indicator of an indicator) -----------------------------------------


def test_ema_of_a_series_with_leading_nulls_seeds_after_them():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    padded = pl.Series([None, None, *values], dtype=pl.Float64)
    out = pl.select(ema(pl.lit(padded), 3).alias("e"))["e"].to_list()
    expected = talib.EMA(np.array(values), 3)
    assert out[:4] == [None] * 4
    assert np.allclose(out[4:], expected[2:], rtol=0, atol=1e-12)


# --- registry and errors ------------------------------------------------------------------


def test_add_indicators_adds_only_the_named_columns(sample_bars: pl.DataFrame):
    out = add_indicators(sample_bars, ["rsi_14", "macd"])
    assert out.columns == [*sample_bars.columns, "rsi_14", "macd", "macd_signal", "macd_hist"]
    assert out.height == sample_bars.height


def test_unknown_indicator_name_is_a_one_line_error(sample_bars: pl.DataFrame):
    with pytest.raises(NotFoundError, match="unknown indicator 'rsi14'"):
        add_indicators(sample_bars, ["rsi14"])


def test_missing_columns_are_named(sample_bars: pl.DataFrame):
    with pytest.raises(InvalidInputError, match="missing column"):
        add_indicators(sample_bars.drop("volume"), ["volume_ratio_20"])


def test_unsorted_dates_are_rejected(sample_bars: pl.DataFrame):
    with pytest.raises(InvalidInputError, match="date order"):
        add_indicators(sample_bars.sort("date", descending=True), ["sma_20"])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_invalid_periods_are_rejected(bad):
    with pytest.raises(InvalidInputError, match="invalid SMA period"):
        sma(pl.col("close"), bad)


def test_macd_needs_fast_shorter_than_slow():
    with pytest.raises(InvalidInputError, match="fast period must be shorter"):
        macd(pl.col("close"), 26, 12)


# --- properties against a plain loop -------------------------------------------------------

prices = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=60,
)


def loop_window(values: list[float], n: int, fn) -> list[float | None]:
    return [fn(values[i + 1 - n : i + 1]) if i + 1 >= n else None for i in range(len(values))]


@settings(max_examples=200, deadline=None)
@given(values=prices, n=st.integers(min_value=1, max_value=15))
def test_sma_highest_lowest_equal_a_plain_loop(values: list[float], n: int):
    series = pl.Series("x", values, dtype=pl.Float64)
    out = pl.DataFrame({"x": series}).select(
        sma(pl.col("x"), n).alias("sma"),
        highest(pl.col("x"), n).alias("highest"),
        lowest(pl.col("x"), n).alias("lowest"),
    )
    assert out["highest"].to_list() == loop_window(values, n, max)
    assert out["lowest"].to_list() == loop_window(values, n, min)
    for ours, expected in zip(out["sma"].to_list(), loop_window(values, n, math.fsum), strict=True):
        if expected is None:
            assert ours is None
        else:
            scale = max(1.0, *(abs(v) for v in values))
            assert abs(ours - expected / n) <= 1e-9 * scale


@settings(max_examples=200, deadline=None)
@given(values=prices, n=st.integers(min_value=1, max_value=15))
def test_ema_equals_a_plain_loop_seeded_with_the_sma(values: list[float], n: int):
    out = pl.DataFrame({"x": pl.Series(values, dtype=pl.Float64)}).select(ema(pl.col("x"), n))
    alpha, state, expected = 2.0 / (n + 1), None, []
    for i, value in enumerate(values):
        if i + 1 == n:
            state = math.fsum(values[:n]) / n
        elif i + 1 > n:
            state = state + alpha * (value - state)
        expected.append(state)
    scale = max([1.0, *(abs(v) for v in values)])
    for ours, reference in zip(out.to_series().to_list(), expected, strict=True):
        assert (ours is None) == (reference is None)
        if reference is not None:
            assert abs(ours - reference) <= 1e-9 * scale
