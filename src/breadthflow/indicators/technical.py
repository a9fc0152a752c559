"""Per-symbol technical indicators as Polars expressions (pure, causal, TA-Lib compatible).

Every builder takes expressions (``pl.col("close")``) and returns an expression that
computes over **one symbol's series in date order**. Bars are long format — one row per
``(symbol, date)``, sorted by ``(symbol, date)`` — so apply each expression per symbol
with ``.over("symbol")``, or :func:`per_symbol`, to evaluate the whole universe at once
without one symbol's history leaking into another's:

>>> import polars as pl
>>> bars = pl.DataFrame({"symbol": ["A"] * 3 + ["B"] * 3,
...                      "close": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]})
>>> bars.with_columns(per_symbol(sma(pl.col("close"), 2)).alias("sma_2"))["sma_2"].to_list()
[None, 1.5, 2.5, None, 15.0, 25.0]

Conventions (see ``docs/indicators.md`` for every formula):

- Values agree with the TA-Lib function named in each docstring, and the warm-up (the
  rows where TA-Lib returns NaN) is null here, never NaN.
- A division by zero (a flat price range, a zero previous close, zero average volume)
  gives null, where TA-Lib would return 0.
- Nothing looks ahead: the value on a date uses only that date's bar and earlier ones.
- Inputs are expected finite; leading nulls (another indicator's warm-up) are allowed,
  and shift the warm-up; a null inside the series makes the windows that contain it null
  (the EMA/Wilder recursions give null on that bar and skip it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from breadthflow.core.errors import InvalidInputError, unknown_name

__all__ = [
    "INDICATORS",
    "Indicator",
    "add_indicators",
    "atr",
    "bollinger",
    "ema",
    "highest",
    "lowest",
    "macd",
    "per_symbol",
    "roc",
    "rsi",
    "sma",
    "stochastic",
    "volume_ratio",
    "wma",
]


def per_symbol(expr: pl.Expr, by: str = "symbol") -> pl.Expr:
    """Evaluate a per-series expression separately for each symbol (``expr.over(by)``)."""
    return expr.over(by)


# --- helpers ---------------------------------------------------------------------------


def _check_period(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(
            f"invalid {name} {value!r} — expected a whole number of bars >= {minimum}"
        )
    return value


def _safe_div(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator``, null where the denominator is zero (never inf/NaN)."""
    return pl.when(denominator != 0).then(numerator / denominator)


def _seeded_ewm(x: pl.Expr, n: int, alpha: float, seed_at: int) -> pl.Expr:
    """Exponential smoothing seeded the way TA-Lib seeds it.

    The first output is the simple mean of the ``n`` values ending at the ``seed_at``-th
    non-null value of ``x``; after it, ``s_t = s_{t-1} + alpha * (x_t - s_{t-1})``.
    ``seed_at == n`` is TA-Lib's EMA (and Wilder smoothing with ``alpha = 1/n``);
    MACD seeds its fast EMA later (see :func:`macd`). Polars' ``ewm_mean(adjust=False)``
    seeds with the first value it sees, so the rows before the seed are nulled and the
    seed row is replaced by the mean before smoothing.
    """
    count = x.is_not_null().cum_sum()
    seed_row = x.is_not_null() & (count == seed_at)
    seeded = pl.when(seed_row).then(x.rolling_mean(n)).when(count > seed_at).then(x)
    smoothed = seeded.ewm_mean(alpha=alpha, adjust=False, min_samples=1, ignore_nulls=True)
    return pl.when(x.is_not_null() & (count >= seed_at)).then(smoothed)


def _wilder(x: pl.Expr, n: int) -> pl.Expr:
    """Wilder's smoothing: seed with the mean of the first ``n`` values, then
    ``s_t = (s_{t-1} * (n - 1) + x_t) / n`` (Wilder 1978; TA-Lib RSI/ATR)."""
    return _seeded_ewm(x, n, 1.0 / n, n)


# --- moving averages -------------------------------------------------------------------


def sma(x: pl.Expr, n: int) -> pl.Expr:
    """Simple moving average over the last ``n`` bars (TA-Lib ``SMA``); warm-up ``n - 1``.

    >>> pl.select(sma(pl.lit(pl.Series([1.0, 2.0, 3.0])), 2)).to_series().to_list()
    [None, 1.5, 2.5]
    """
    return x.rolling_mean(_check_period("SMA period", n))


def ema(x: pl.Expr, n: int) -> pl.Expr:
    """Exponential moving average, ``alpha = 2 / (n + 1)``, seeded with the SMA of the
    first ``n`` values (TA-Lib ``EMA``); warm-up ``n - 1``.

    >>> pl.select(ema(pl.lit(pl.Series([1.0, 2.0, 3.0, 4.0])), 3)).to_series().to_list()
    [None, None, 2.0, 3.0]
    """
    n = _check_period("EMA period", n)
    return _seeded_ewm(x, n, 2.0 / (n + 1), n)


def wma(x: pl.Expr, n: int) -> pl.Expr:
    """Linearly weighted moving average, weights ``1 … n`` with ``n`` on the current bar
    (TA-Lib ``WMA``); warm-up ``n - 1``.

    >>> pl.select(wma(pl.lit(pl.Series([3.0, 0.0, 3.0])), 2)).to_series().to_list()
    [None, 1.0, 2.0]
    """
    n = _check_period("WMA period", n)
    weights = [float(w) for w in range(1, n + 1)]
    # Polars' weighted rolling sum does not accept nulls: fill them, then null every
    # window that contained one (the unweighted rolling sum is null exactly there).
    weighted = x.fill_null(0.0).rolling_sum(n, weights=weights)
    return pl.when(x.rolling_sum(n).is_not_null()).then(weighted / (n * (n + 1) / 2))


# --- oscillators -----------------------------------------------------------------------


def rsi(close: pl.Expr, n: int = 14) -> pl.Expr:
    """Relative strength index with Wilder smoothing (TA-Lib ``RSI``); warm-up ``n``.

    ``100 * avg_gain / (avg_gain + avg_loss)``; null when the price did not move over
    the smoothing (TA-Lib returns 0 there).
    """
    n = _check_period("RSI period", n)
    change = close.diff()
    gain = _wilder(change.clip(lower_bound=0.0), n)
    loss = _wilder((-change).clip(lower_bound=0.0), n)
    return 100.0 * _safe_div(gain, gain + loss)


def macd(
    close: pl.Expr, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Moving-average convergence/divergence (TA-Lib ``MACD``): ``(macd, signal, hist)``.

    ``macd = EMA_fast - EMA_slow``, ``signal = EMA_signal(macd)``, ``hist = macd - signal``.
    As in TA-Lib, the fast EMA is seeded on the same bar as the slow one (with the SMA of
    the ``fast`` values ending there), and all three outputs start together after a
    warm-up of ``slow + signal - 2`` bars.
    """
    fast = _check_period("MACD fast period", fast)
    slow = _check_period("MACD slow period", slow)
    signal = _check_period("MACD signal period", signal)
    if fast >= slow:
        raise InvalidInputError(
            f"invalid MACD periods fast={fast}, slow={slow} — the fast period must be shorter"
        )
    line = _seeded_ewm(close, fast, 2.0 / (fast + 1), slow) - ema(close, slow)
    signal_line = ema(line, signal)
    ready = signal_line.is_not_null()
    return pl.when(ready).then(line), signal_line, line - signal_line


def bollinger(close: pl.Expr, n: int = 20, k: float = 2.0) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Bollinger bands (TA-Lib ``BBANDS`` with SMA): ``(upper, middle, lower)``.

    ``middle = SMA_n``, ``upper/lower = middle ± k * σ`` with the population standard
    deviation (``ddof=0``) of the same window; warm-up ``n - 1``.
    """
    n = _check_period("Bollinger period", n)
    middle = sma(close, n)
    width = k * close.rolling_std(n, ddof=0)
    return middle + width, middle, middle - width


def atr(high: pl.Expr, low: pl.Expr, close: pl.Expr, n: int = 14) -> pl.Expr:
    """Average true range with Wilder smoothing (TA-Lib ``ATR``); warm-up ``n``.

    True range = ``max(high - low, |high - prev close|, |low - prev close|)``, undefined on
    the first bar (no previous close); ATR seeds with the mean of the first ``n`` ranges.
    """
    n = _check_period("ATR period", n)
    prev = close.shift(1)
    true_range = pl.when(prev.is_not_null()).then(
        pl.max_horizontal(high - low, (high - prev).abs(), (low - prev).abs())
    )
    return _wilder(true_range, n)


def stochastic(
    high: pl.Expr,
    low: pl.Expr,
    close: pl.Expr,
    k: int = 14,
    smooth_k: int = 3,
    d: int = 3,
) -> tuple[pl.Expr, pl.Expr]:
    """Slow stochastic (TA-Lib ``STOCH`` with SMA smoothing): ``(slow_k, slow_d)``.

    ``fast %K = 100 * (close - lowest low_k) / (highest high_k - lowest low_k)``,
    ``slow %K = SMA_smooth_k(fast %K)``, ``slow %D = SMA_d(slow %K)``. Both outputs start
    after ``k + smooth_k + d - 3`` bars, as in TA-Lib; a flat ``k``-bar range gives null.
    """
    k = _check_period("stochastic %K period", k)
    smooth_k = _check_period("stochastic %K smoothing", smooth_k)
    d = _check_period("stochastic %D period", d)
    lowest_low = low.rolling_min(k)
    price_range = high.rolling_max(k) - lowest_low
    # TA-Lib divides by (range / 100) rather than multiplying by 100; same rounding here.
    fast_k = _safe_div(close - lowest_low, price_range / 100.0)
    slow_k = fast_k.rolling_mean(smooth_k)
    slow_d = slow_k.rolling_mean(d)
    return pl.when(slow_d.is_not_null()).then(slow_k), slow_d


def roc(x: pl.Expr, n: int = 10) -> pl.Expr:
    """Rate of change in percent, ``(x / x[n bars ago] - 1) * 100`` (TA-Lib ``ROC``);
    warm-up ``n``; null when the earlier value is zero."""
    n = _check_period("ROC period", n)
    return (_safe_div(x, x.shift(n)) - 1.0) * 100.0


# --- ranges and volume -----------------------------------------------------------------


def highest(x: pl.Expr, n: int) -> pl.Expr:
    """Highest value of the last ``n`` bars, current bar included (TA-Lib ``MAX``)."""
    return x.rolling_max(_check_period("highest period", n))


def lowest(x: pl.Expr, n: int) -> pl.Expr:
    """Lowest value of the last ``n`` bars, current bar included (TA-Lib ``MIN``)."""
    return x.rolling_min(_check_period("lowest period", n))


def volume_ratio(volume: pl.Expr, n: int = 20) -> pl.Expr:
    """Today's volume over its ``n``-bar SMA (current bar included); warm-up ``n - 1``;
    null when the average is zero. No TA-Lib function; equals ``volume / SMA(volume, n)``."""
    return _safe_div(volume, sma(volume, _check_period("volume ratio period", n)))


# --- registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Indicator:
    """A named indicator with fixed parameters: output column name → per-series expression.

    Calling it on a long frame of bars adds its columns, computed per symbol.
    """

    name: str
    description: str
    build: Callable[[], dict[str, pl.Expr]]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.build())

    def expressions(self, by: str = "symbol") -> list[pl.Expr]:
        return [per_symbol(expr, by).alias(column) for column, expr in self.build().items()]

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        return add_indicators(frame, [self.name])


_H, _L, _C, _V = (pl.col(c) for c in ("high", "low", "close", "volume"))


def _single(column: str, expr: Callable[[], pl.Expr]) -> Callable[[], dict[str, pl.Expr]]:
    return lambda: {column: expr()}


def _registry(*items: Indicator) -> dict[str, Indicator]:
    return {item.name: item for item in items}


INDICATORS: dict[str, Indicator] = _registry(
    Indicator(
        "sma_20", "20-bar simple moving average of close", _single("sma_20", lambda: sma(_C, 20))
    ),
    Indicator(
        "sma_50", "50-bar simple moving average of close", _single("sma_50", lambda: sma(_C, 50))
    ),
    Indicator(
        "sma_200",
        "200-bar simple moving average of close",
        _single("sma_200", lambda: sma(_C, 200)),
    ),
    Indicator(
        "ema_20",
        "20-bar exponential moving average of close",
        _single("ema_20", lambda: ema(_C, 20)),
    ),
    Indicator(
        "wma_20", "20-bar weighted moving average of close", _single("wma_20", lambda: wma(_C, 20))
    ),
    Indicator("rsi_14", "14-bar Wilder RSI of close", _single("rsi_14", lambda: rsi(_C, 14))),
    Indicator(
        "macd",
        "MACD(12, 26, 9) of close: line, signal, histogram",
        lambda: dict(zip(("macd", "macd_signal", "macd_hist"), macd(_C, 12, 26, 9), strict=True)),
    ),
    Indicator(
        "bbands",
        "Bollinger bands (20 bars, 2 standard deviations) of close",
        lambda: dict(
            zip(("bb_upper", "bb_middle", "bb_lower"), bollinger(_C, 20, 2.0), strict=True)
        ),
    ),
    Indicator(
        "atr_14", "14-bar Wilder average true range", _single("atr_14", lambda: atr(_H, _L, _C, 14))
    ),
    Indicator(
        "stoch",
        "slow stochastic (14, 3, 3): %K and %D",
        lambda: dict(zip(("stoch_k", "stoch_d"), stochastic(_H, _L, _C, 14, 3, 3), strict=True)),
    ),
    Indicator(
        "roc_10", "10-bar rate of change of close, percent", _single("roc_10", lambda: roc(_C, 10))
    ),
    Indicator(
        "highest_20",
        "highest high of the last 20 bars",
        _single("highest_20", lambda: highest(_H, 20)),
    ),
    Indicator(
        "lowest_20", "lowest low of the last 20 bars", _single("lowest_20", lambda: lowest(_L, 20))
    ),
    Indicator(
        "volume_ratio_20",
        "volume over its 20-bar average",
        _single("volume_ratio_20", lambda: volume_ratio(_V, 20)),
    ),
)


def add_indicators(
    frame: pl.DataFrame, names: list[str] | tuple[str, ...] | None = None
) -> pl.DataFrame:
    """Add the named indicators (all of :data:`INDICATORS` by default) to a long frame.

    ``frame`` needs ``symbol``, ``date`` and the price columns the indicators read, with
    each symbol's rows in strictly increasing date order. Rows keep their order.

    >>> import datetime as dt
    >>> bars = pl.DataFrame({"symbol": ["A", "A"], "date": [dt.date(2024, 1, 2),
    ...     dt.date(2024, 1, 3)], "high": [2.0, 3.0], "low": [1.0, 1.5]})
    >>> add_indicators(bars, ["highest_20"])["highest_20"].to_list()
    [None, None]
    """
    chosen = list(INDICATORS) if names is None else list(dict.fromkeys(names))
    for name in chosen:
        if name not in INDICATORS:
            raise unknown_name("indicator", name, INDICATORS)
    exprs = [expr for name in chosen for expr in INDICATORS[name].expressions()]
    if not exprs:
        return frame
    needed = {"symbol", "date"} | {column for expr in exprs for column in expr.meta.root_names()}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise InvalidInputError(
            f"bars are missing column(s) {', '.join(missing)} — expected long-format bars "
            "with symbol, date, open, high, low, close, volume"
        )
    out_of_order = frame.select(
        (pl.col("date") <= pl.col("date").shift(1)).over("symbol").any()
    ).item()
    if out_of_order:
        raise InvalidInputError(
            "bars are not in date order within each symbol (or repeat a date) — "
            "sort them with frame.sort('symbol', 'date') and drop duplicates"
        )
    return frame.with_columns(exprs)
