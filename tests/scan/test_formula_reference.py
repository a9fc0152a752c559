"""Scan formulas against a plain pandas reference on the real sample (60 symbols, a year).

Each formula is written a second time by hand — groupby symbol, rolling windows, the EMA
recursion spelled out, TA-Lib for RSI/MACD/ATR — and must give the same matches and the
same values: ``|ours − reference| <= 1e-9 · max(1, |reference|)``, null exactly where the
reference is NaN (or ±inf: a division by zero is null in formulas).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import pytest
import talib

from breadthflow.data.providers.sample import load_sample
from breadthflow.indicators.breadth import SMA_TIE_TOLERANCE, breadth_table
from breadthflow.scan.formula import compile_formula

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def sample() -> tuple[pl.DataFrame, pl.DataFrame, pd.DataFrame]:
    bars = load_sample()
    symbols = bars["symbol"].unique().sort().to_list()[::8][:60]
    subset = bars.filter(pl.col("symbol").is_in(symbols)).select(
        "symbol", "date", "open", "high", "low", "close", "volume"
    )
    breadth = breadth_table(subset, hl_window=50)
    frame = subset.sort("symbol", "date").to_pandas()
    frame = frame.merge(breadth.to_pandas(), on="date", how="left")
    return subset, breadth, frame


# --- the reference, by hand ----------------------------------------------------------------


def per_symbol(frame: pd.DataFrame, fn: Callable[[pd.DataFrame], pd.Series]) -> pd.Series:
    return frame.groupby("symbol", group_keys=False, sort=False)[frame.columns].apply(fn)


def rolling(frame: pd.DataFrame, column: str | pd.Series, n: int, how: str, **kw) -> pd.Series:
    values = frame[column] if isinstance(column, str) else column
    return values.groupby(frame["symbol"], sort=False).transform(
        lambda s: getattr(s.rolling(n), how)(**kw)
    )


def shift(frame: pd.DataFrame, values: pd.Series, k: int) -> pd.Series:
    return values.groupby(frame["symbol"], sort=False).shift(k)


def ema_by_hand(values: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib's EMA: the SMA of the first n values, then s += 2/(n+1) · (x − s)."""
    out = np.full(len(values), np.nan)
    if len(values) < n:
        return out
    alpha = 2.0 / (n + 1)
    state = values[:n].mean()
    out[n - 1] = state
    for i in range(n, len(values)):
        state = state + alpha * (values[i] - state)
        out[i] = state
    return out


def ema(frame: pd.DataFrame, column: str, n: int) -> pd.Series:
    return per_symbol(
        frame, lambda g: pd.Series(ema_by_hand(g[column].to_numpy(), n), index=g.index)
    )


def talib_series(frame: pd.DataFrame, fn: Callable[[pd.DataFrame], np.ndarray]) -> pd.Series:
    return per_symbol(frame, lambda g: pd.Series(fn(g), index=g.index))


def exceeds(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a - b) > SMA_TIE_TOLERANCE * b.abs()


def crossed_above(frame: pd.DataFrame, a: pd.Series, b: pd.Series) -> pd.Series:
    pa, pb = shift(frame, a, 1), shift(frame, b, 1)
    known = a.notna() & b.notna() & pa.notna() & pb.notna()
    return known & exceeds(a, b) & ~exceeds(pa, pb)


def barssince(frame: pd.DataFrame, cond: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=frame.index)
    for _, rows in frame.groupby("symbol", sort=False).groups.items():
        last = None
        for position, row in enumerate(rows):
            if cond[row]:
                last = position
            out[row] = np.nan if last is None else position - last
    return out


def by_date(frame: pd.DataFrame, values: pd.Series, **kw) -> pd.Series:
    return values.groupby(frame["date"]).rank(**kw)


def percentile(frame: pd.DataFrame, values: pd.Series) -> pd.Series:
    ranks = by_date(frame, values, method="average")
    count = values.groupby(frame["date"]).transform("count")
    return (100 * (ranks - 1) / (count - 1)).where(count > 1)


def ref_volume_surge(f: pd.DataFrame) -> dict[str, pd.Series]:
    sma20 = rolling(f, "close", 20, "mean")
    vol = 1.5 * rolling(f, "volume", 20, "mean")
    return {
        "close": f["close"],
        "sma(close, 20)": sma20,
        "volume": f["volume"],
        "1.5 * sma(volume, 20)": vol,
    }


def ref_ema_trend(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {"ema(close, 12)": ema(f, "close", 12), "ema(close, 26)": ema(f, "close", 26)}


def ref_rsi(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {"rsi(close, 14)": talib_series(f, lambda g: talib.RSI(g["close"].to_numpy(), 14))}


def ref_macd(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        "macd(close)": talib_series(f, lambda g: talib.MACD(g["close"].to_numpy())[0]),
        "macd_signal(close)": talib_series(f, lambda g: talib.MACD(g["close"].to_numpy())[1]),
    }


def ref_atr(f: pd.DataFrame) -> dict[str, pd.Series]:
    atr = talib_series(
        f, lambda g: talib.ATR(g["high"].to_numpy(), g["low"].to_numpy(), g["close"].to_numpy(), 14)
    )
    return {"atr(14) / close": atr / f["close"]}


def ref_bollinger(f: pd.DataFrame) -> dict[str, pd.Series]:
    mid = rolling(f, "close", 20, "mean")
    width = 2 * rolling(f, "close", 20, "std", ddof=0)
    return {
        "close": f["close"],
        "bb_upper(close, 20, 2)": mid + width,
        "bb_lower(close, 20, 2)": mid - width,
    }


def ref_breakout(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {"close": f["close"], "highest(high, 20)[1]": shift(f, rolling(f, "high", 20, "max"), 1)}


def ref_momentum(f: pd.DataFrame) -> dict[str, pd.Series]:
    roc = (f["close"] / shift(f, f["close"], 10) - 1) * 100
    return {
        "roc(close, 10)": roc,
        "stdev(close, 10) / close": rolling(f, "close", 10, "std", ddof=0) / f["close"],
    }


def ref_pullback(f: pd.DataFrame) -> dict[str, pd.Series]:
    close = f["close"]
    return {
        "change(close, 5)": close - shift(f, close, 5),
        "close[1]": shift(f, close, 1),
        "close[2]": shift(f, close, 2),
    }


def ref_golden_cross(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {"close": f["close"], "sma(close, 50)": rolling(f, "close", 50, "mean")}


def ref_recent_high(f: pd.DataFrame) -> dict[str, pd.Series]:
    new_high = f["close"] > shift(f, rolling(f, "close", 20, "max"), 1)
    return {"barssince(close > highest(close, 20)[1])": barssince(f, new_high)}


def ref_rank(f: pd.DataFrame) -> dict[str, pd.Series]:
    roc = (f["close"] / shift(f, f["close"], 20) - 1) * 100
    return {"rank(roc(close, 20))": by_date(f, roc, ascending=False, method="average")}


def ref_percentile(f: pd.DataFrame) -> dict[str, pd.Series]:
    ratio = f["volume"] / rolling(f, "volume", 20, "mean")
    return {"percentile(volume / sma(volume, 20))": percentile(f, ratio)}


def ref_breadth(f: pd.DataFrame) -> dict[str, pd.Series]:
    return {
        "pct_above_sma50": f["pct_above_sma50"].astype(float),
        "close": f["close"],
        "open": f["open"],
    }


def ref_weighted(f: pd.DataFrame) -> dict[str, pd.Series]:
    weights = np.arange(1, 11, dtype=float)
    wma = (
        f["close"]
        .groupby(f["symbol"], sort=False)
        .transform(
            lambda s: s.rolling(10).apply(lambda w: (w * weights).sum() / weights.sum(), raw=True)
        )
    )
    return {
        "wma(close, 10)": wma,
        "sma(close, 30)": rolling(f, "close", 30, "mean"),
        "lowest(low, 10)": rolling(f, "low", 10, "min"),
        "lowest(low, 30)": rolling(f, "low", 30, "min"),
    }


# formula, reference values, the condition on them (NaN compares false, as null does)
CASES: list[tuple[str, Callable, Callable]] = [
    (
        "close > sma(close, 20) and volume > 1.5 * sma(volume, 20)",
        ref_volume_surge,
        lambda f, v: (
            (v["close"] > v["sma(close, 20)"]) & (v["volume"] > v["1.5 * sma(volume, 20)"])
        ),
    ),
    (
        "ema(close, 12) > ema(close, 26)",
        ref_ema_trend,
        lambda f, v: v["ema(close, 12)"] > v["ema(close, 26)"],
    ),
    ("rsi(close, 14) < 35", ref_rsi, lambda f, v: v["rsi(close, 14)"] < 35),
    (
        "macd(close) > macd_signal(close)",
        ref_macd,
        lambda f, v: v["macd(close)"] > v["macd_signal(close)"],
    ),
    ("atr(14) / close > 0.025", ref_atr, lambda f, v: v["atr(14) / close"] > 0.025),
    (
        "close > bb_upper(close, 20, 2) or close < bb_lower(close, 20, 2)",
        ref_bollinger,
        lambda f, v: (
            (v["close"] > v["bb_upper(close, 20, 2)"]) | (v["close"] < v["bb_lower(close, 20, 2)"])
        ),
    ),
    (
        "close >= highest(high, 20)[1]",
        ref_breakout,
        lambda f, v: v["close"] >= v["highest(high, 20)[1]"],
    ),
    (
        "roc(close, 10) > 3 and stdev(close, 10) / close < 0.03",
        ref_momentum,
        lambda f, v: (v["roc(close, 10)"] > 3) & (v["stdev(close, 10) / close"] < 0.03),
    ),
    (
        "change(close, 5) < 0 and close[1] > close[2]",
        ref_pullback,
        lambda f, v: (v["change(close, 5)"] < 0) & (v["close[1]"] > v["close[2]"]),
    ),
    (
        "crosses_above(close, sma(close, 50))",
        ref_golden_cross,
        lambda f, v: crossed_above(f, v["close"], v["sma(close, 50)"]),
    ),
    (
        "barssince(close > highest(close, 20)[1]) <= 3",
        ref_recent_high,
        lambda f, v: v["barssince(close > highest(close, 20)[1])"] <= 3,
    ),
    ("rank(roc(close, 20)) <= 5", ref_rank, lambda f, v: v["rank(roc(close, 20))"] <= 5),
    (
        "percentile(volume / sma(volume, 20)) >= 90",
        ref_percentile,
        lambda f, v: v["percentile(volume / sma(volume, 20))"] >= 90,
    ),
    (
        "pct_above_sma50 > 55 and close > open",
        ref_breadth,
        lambda f, v: (v["pct_above_sma50"] > 55) & (v["close"] > v["open"]),
    ),
    (
        "wma(close, 10) > sma(close, 30) and lowest(low, 10) > lowest(low, 30)",
        ref_weighted,
        lambda f, v: (
            (v["wma(close, 10)"] > v["sma(close, 30)"])
            & (v["lowest(low, 10)"] > v["lowest(low, 30)"])
        ),
    ),
]


@pytest.mark.parametrize(("text", "reference", "condition"), CASES, ids=[c[0] for c in CASES])
def test_formula_matches_the_pandas_reference(sample, text, reference, condition):
    bars, breadth, frame = sample
    formula = compile_formula(text)
    ours = formula.evaluate(bars, breadth).to_pandas()
    assert list(ours["symbol"]) == list(frame["symbol"])
    assert list(ours["date"]) == list(frame["date"])

    expected = {k: v.replace([np.inf, -np.inf], np.nan) for k, v in reference(frame).items()}
    assert set(formula.value_names) == set(expected)
    for name, want in expected.items():
        got = ours[name].to_numpy(dtype=float)
        want = want.to_numpy(dtype=float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        both = ~np.isnan(want)
        scale = np.maximum(1.0, np.abs(want[both]))
        assert np.all(np.abs(got[both] - want[both]) <= TOLERANCE * scale), name

    matched = condition(frame, expected).fillna(False).astype(bool).to_numpy()
    assert np.array_equal(ours["match"].to_numpy(), matched)
    assert 0 < matched.sum() < len(matched)  # the case says something
