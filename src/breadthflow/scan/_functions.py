"""What the names of the formula language mean: fields, breadth series, functions.

Every function is a :class:`Function`: its parameters (with their kinds, which the compiler
checks), its result type, how many bars of history it needs, and a builder that returns a
Polars expression over **one group's** rows — one symbol's bars in date order (``over =
"symbol"``) or one date's cross-section (``over = "date"``). The compiler applies
``.over(...)``. Builders reuse :mod:`breadthflow.indicators.technical` (TA-Lib compatible)
and :func:`breadthflow.signals.base.crossed_above`; nothing is re-implemented here.

Every per-symbol function also has a *segmented* builder: the same values computed in one
pass over the whole universe sorted by ``(symbol, date)``, restarting at each symbol
(:mod:`breadthflow.scan._rolling`), which is many times faster than splitting the frame
into one group per symbol. A segmented builder gives the values of the per-symbol one,
nulls included (exactly for shifts and max/min, to rounding for sums and recursions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl

from breadthflow.indicators import technical as ta
from breadthflow.indicators.breadth import BREADTH_COLUMNS, SMA_TIE_TOLERANCE, SMA_WINDOWS
from breadthflow.scan import _rolling as seg
from breadthflow.scan._rolling import POS, masked, rolling_mean
from breadthflow.signals.base import crossed_above, crossed_below

Kind = Literal["number", "condition"]
ParamKind = Literal["series", "condition", "window", "constant"]

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

# Market breadth, one value per date (docs/breadth.md), joined onto every symbol's bar.
BREADTH_SERIES: tuple[str, ...] = tuple(c for c in BREADTH_COLUMNS if c != "date")
BREADTH_CONDITIONS = frozenset({"zbt_thrust"})

# Recursive smoothers (EMA, Wilder) never forget their seed, they only discount it. The
# warm-up asks for enough bars that the seed's weight has decayed to about 1e-4 (e^-8 to
# e^-9): 5 periods for an EMA (alpha = 2/(n+1)), 10 for Wilder smoothing (alpha = 1/n) —
# rsi(close, 14) needs 140. Every other warm-up is exact or one bar generous (a window of n
# bars asks for n bars of history).
EMA_SETTLE = 5
WILDER_SETTLE = 10
# barssince(cond) can look back arbitrarily far; this is the history it is given.
BARSSINCE_WARMUP = 250
# New highs/lows look back over --hl-window bars (252 by default: a trading year).
DEFAULT_HL_WINDOW = 252
MAX_WINDOW = 5_000


def _breadth_warmup() -> dict[str, int]:
    warmup = dict.fromkeys(BREADTH_SERIES, 1)  # counts need a previous close
    warmup |= {f"pct_above_sma{n}": n for n in SMA_WINDOWS}
    # McClellan: 19/39-day EMAs seeded with their first value; the summation index is their
    # running total, and the A/D line a running total of net advances (level depends on the
    # first date, changes do not).
    warmup |= dict.fromkeys(("mcclellan_osc", "mcclellan_osc_ratio", "mcclellan_sum"), 39 * 5)
    warmup |= dict.fromkeys(("new_highs", "new_lows"), DEFAULT_HL_WINDOW)
    warmup["hl_index"] = DEFAULT_HL_WINDOW + 10  # 10-day SMA of the new-high share
    warmup["zbt"] = 10 * EMA_SETTLE + 1
    warmup["zbt_thrust"] = warmup["zbt"] + 10
    return warmup


BREADTH_WARMUP: Mapping[str, int] = _breadth_warmup()


@dataclass(frozen=True)
class Param:
    """One parameter: ``series`` (a number per bar), ``condition`` (true/false per bar),
    ``window`` (a whole number of bars written out, 1 … MAX_WINDOW) or ``constant`` (a
    number written out)."""

    name: str
    kind: ParamKind
    default: float | None = None

    def __str__(self) -> str:
        if self.default is None:
            return self.name
        shown = int(self.default) if float(self.default).is_integer() else self.default
        return f"{self.name}={shown}"


@dataclass(frozen=True)
class Function:
    """A formula function; see docs/scan-formulas.md for each definition."""

    name: str
    params: tuple[Param, ...]
    returns: Kind
    summary: str
    warmup_rule: str  # for the docs; ``warmup`` computes it
    reference: str
    build: Callable[..., pl.Expr]  # (*inputs as expressions, *literals) -> group expression
    warmup: Callable[[int, dict[str, float]], int]  # (inputs' warm-up, literals) -> bars
    over: Literal["symbol", "date"] = "symbol"
    reads: tuple[str, ...] = ()  # fields read directly (atr)
    # (*inputs, *literals) -> the same values over the whole sorted universe (reads the POS
    # column); finite or null, never ±inf/NaN
    segmented: Callable[..., pl.Expr] | None = None

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(str(p) for p in self.params)})"

    @property
    def required(self) -> int:
        return sum(p.default is None for p in self.params)


def _p(spec: str) -> tuple[Param, ...]:
    """``"x:series n:window=14"`` → parameters."""
    params = []
    for item in spec.split():
        name, _, rest = item.partition(":")
        kind, _, default = rest.partition("=")
        params.append(Param(name, kind, float(default) if default else None))  # type: ignore[arg-type]
    return tuple(params)


def _barssince(cond: pl.Expr) -> pl.Expr:
    bar = pl.int_range(pl.len(), dtype=pl.Int64)
    last = pl.when(cond.fill_null(False)).then(bar).forward_fill()
    return (bar - last).cast(pl.Float64)


def _barssince_segmented(cond: pl.Expr) -> pl.Expr:
    """:func:`_barssince` over the whole sorted universe: the last true bar counts only
    when it is no further back than the symbol's first bar."""
    row = pl.int_range(pl.len(), dtype=pl.Int64)
    last = pl.when(cond.fill_null(False)).then(row).forward_fill()
    since = row - last
    return pl.when(since <= pl.col(POS)).then(since.cast(pl.Float64))


def _first_bar_of_cross(now: pl.Expr, cross: pl.Expr) -> pl.Expr:
    """``cross`` (from the previous bar of the whole column), except on a symbol's first
    bar, where per symbol the previous bar is missing: ``now AND null`` — false when ``now``
    is false, null otherwise (Kleene logic, as :func:`crossed_above` gives there)."""
    return pl.when(pl.col(POS) > 0).then(cross).otherwise(now & pl.lit(None, pl.Boolean))


def _exceeds(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    # signals.base's tie rule (docs/breadth.md): within SMA_TIE_TOLERANCE is not above.
    return (a - b) > SMA_TIE_TOLERANCE * b.abs()


def _crosses_above_segmented(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return _first_bar_of_cross(_exceeds(a, b), crossed_above(a, b))


def _crosses_below_segmented(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return _first_bar_of_cross(_exceeds(b, a), crossed_below(a, b))


def _percentile(x: pl.Expr) -> pl.Expr:
    n = x.count().cast(pl.Float64)
    return pl.when(n > 1).then(100.0 * (x.rank("average") - 1.0) / (n - 1.0))


_H, _L, _C = pl.col("high"), pl.col("low"), pl.col("close")


def _fn(
    name: str,
    params: str,
    summary: str,
    warmup_rule: str,
    reference: str,
    build: Callable[..., pl.Expr],
    warmup: Callable[[int, dict[str, float]], int],
    returns: Kind = "number",
    over: Literal["symbol", "date"] = "symbol",
    reads: tuple[str, ...] = (),
    segmented: Callable[..., pl.Expr] | None = None,
) -> Function:
    return Function(name, _p(params), returns, summary, warmup_rule, reference, build, warmup,
                    over, reads, segmented)  # fmt: skip


def _n(p: dict[str, float], key: str = "n") -> int:
    return int(p[key])


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        _fn("sma", "x:series n:window", "simple moving average of the last n bars",
            "w + n", "TA-Lib SMA",
            lambda x, n: ta.sma(x, int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: rolling_mean(x, int(n))),
        _fn("ema", "x:series n:window",
            "exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n",
            "w + 5n (seed weight ≈ 1e-4)", "TA-Lib EMA",
            lambda x, n: ta.ema(x, int(n)), lambda w, p: w + EMA_SETTLE * _n(p),
            segmented=lambda x, n: seg.ema(x, int(n))),
        _fn("wma", "x:series n:window", "linearly weighted moving average, weight n on today",
            "w + n", "TA-Lib WMA",
            lambda x, n: ta.wma(x, int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: seg.wma(x, int(n))),
        _fn("rsi", "x:series n:window=14", "Wilder relative strength index, 0–100",
            "w + 10n (seed weight ≈ 1e-4)", "TA-Lib RSI",
            lambda x, n: ta.rsi(x, int(n)), lambda w, p: w + WILDER_SETTLE * _n(p),
            segmented=lambda x, n: seg.rsi(x, int(n))),
        _fn("macd", "x:series fast:window=12 slow:window=26",
            "MACD line: EMA_fast − EMA_slow (starts with the 9-bar signal, as in TA-Lib)",
            "w + 5·slow", "TA-Lib MACD (line)",
            lambda x, fast, slow: ta.macd(x, int(fast), int(slow))[0],
            lambda w, p: w + max(EMA_SETTLE * _n(p, "slow"), _n(p, "slow") + 7),
            segmented=lambda x, fast, slow: seg.macd(x, int(fast), int(slow), 9, False)),
        _fn("macd_signal", "x:series fast:window=12 slow:window=26 signal:window=9",
            "MACD signal line: EMA_signal of the MACD line",
            "w + 5·slow + 5·signal", "TA-Lib MACD (signal)",
            lambda x, fast, slow, signal: ta.macd(x, int(fast), int(slow), int(signal))[1],
            lambda w, p: w + EMA_SETTLE * (_n(p, "slow") + _n(p, "signal")),
            segmented=lambda x, fast, slow, signal: seg.macd(x, int(fast), int(slow), int(signal),
                                                             True)),
        _fn("atr", "n:window=14", "Wilder average true range of high, low, close",
            "10n (seed weight ≈ 1e-4)", "TA-Lib ATR",
            lambda n: ta.atr(_H, _L, _C, int(n)), lambda w, p: w + WILDER_SETTLE * _n(p),
            reads=("high", "low", "close"), segmented=lambda n: seg.atr(_H, _L, _C, int(n))),
        _fn("bb_upper", "x:series n:window=20 k:constant=2",
            "upper Bollinger band: SMA_n + k·σ_n (population σ)", "w + n",
            "TA-Lib BBANDS (upper, SMA)",
            lambda x, n, k: ta.bollinger(x, int(n), float(k))[0], lambda w, p: w + _n(p),
            segmented=lambda x, n, k: seg.bollinger(x, int(n), float(k))),
        _fn("bb_lower", "x:series n:window=20 k:constant=2",
            "lower Bollinger band: SMA_n − k·σ_n (population σ)", "w + n",
            "TA-Lib BBANDS (lower, SMA)",
            lambda x, n, k: ta.bollinger(x, int(n), float(k))[2], lambda w, p: w + _n(p),
            segmented=lambda x, n, k: seg.bollinger(x, int(n), -float(k))),
        _fn("highest", "x:series n:window", "highest value of the last n bars, today included",
            "w + n", "TA-Lib MAX",
            lambda x, n: ta.highest(x, int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: masked(ta.highest(x, int(n)), int(n) - 1)),
        _fn("lowest", "x:series n:window", "lowest value of the last n bars, today included",
            "w + n", "TA-Lib MIN",
            lambda x, n: ta.lowest(x, int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: masked(ta.lowest(x, int(n)), int(n) - 1)),
        _fn("roc", "x:series n:window=10", "rate of change in percent: (x / x[n] − 1) · 100",
            "w + n", "TA-Lib ROC",
            lambda x, n: ta.roc(x, int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: masked(ta.roc(x, int(n)), int(n))),
        _fn("stdev", "x:series n:window", "population standard deviation of the last n bars",
            "w + n", "TA-Lib STDDEV (nbdev 1)",
            lambda x, n: x.rolling_std(int(n), ddof=0), lambda w, p: w + _n(p),
            segmented=lambda x, n: seg.stdev(x, int(n))),
        _fn("change", "x:series n:window=1", "difference from n bars ago: x − x[n]", "w + n",
            "TA-Lib MOM",
            lambda x, n: x - x.shift(int(n)), lambda w, p: w + _n(p),
            segmented=lambda x, n: masked(x - x.shift(int(n)), int(n))),
        _fn("barssince", "cond:condition",
            "bars since cond was last true: 0 on a true bar, null before the first",
            f"w + {BARSSINCE_WARMUP}", "TradingView ta.barssince",
            _barssince, lambda w, p: w + BARSSINCE_WARMUP, segmented=_barssince_segmented),
        _fn("crosses_above", "a:series b:series",
            "a > b on this bar and a ≤ b on the symbol's previous bar (1e-9 relative ties)",
            "max(wa, wb) + 1", "breadthflow.signals.base.crossed_above",
            crossed_above, lambda w, p: w + 1, returns="condition",
            segmented=_crosses_above_segmented),
        _fn("crosses_below", "a:series b:series",
            "a < b on this bar and a ≥ b on the symbol's previous bar (1e-9 relative ties)",
            "max(wa, wb) + 1", "breadthflow.signals.base.crossed_below",
            crossed_below, lambda w, p: w + 1, returns="condition",
            segmented=_crosses_below_segmented),
        _fn("rank", "x:series",
            "rank of x among the symbols on the same date: 1 = largest, ties averaged",
            "w", "pandas rank(ascending=False, method='average')",
            lambda x: x.rank("average", descending=True), lambda w, p: w, over="date"),
        _fn("percentile", "x:series",
            "100 · (ascending rank − 1) / (n − 1) on the same date: 0 = smallest, 100 = largest",
            "w", "pandas rank(method='average'), rescaled",
            _percentile, lambda w, p: w, over="date"),
    )
}  # fmt: skip
