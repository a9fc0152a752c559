"""Features and labels for machine-learning models: per-stock technicals plus market breadth.

Pure: frames in, frames out. One row per ``(symbol, date)``.

- **Features** at date *t* use only bars dated *t* or earlier (every input is a trailing
  window, an expanding recursion, or the universe's breadth, which is causal too). A test
  checks it by truncation: features computed on data cut at *t* equal those computed on
  all the data, for every date up to *t*.
- **The label** is the forward return ``close[t+N] / close[t] - 1`` over the next ``N``
  bars of the same symbol. It looks ahead *by design* — it is what a model learns to
  predict — so it is kept in its own column and never used as an input. Training code
  must leave a gap of ``N`` bars between a training window and the test window after it
  (``ml.folds``), or the last training labels would overlap the test period.

Every feature is defined in docs/models.md.

>>> frame = build_dataset(bars, horizon=5, hl_window=50)          # doctest: +SKIP
>>> frame.columns[:3], frame.columns[-1]                          # doctest: +SKIP
(['symbol', 'date', 'ret_1'], 'label')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.indicators.breadth import breadth_table
from breadthflow.indicators.technical import atr, macd, per_symbol, rsi, sma, volume_ratio

S = "symbol"
CLOSE = pl.col("close")
LABEL = "label"


def _ret(n: int) -> pl.Expr:
    return per_symbol(CLOSE / CLOSE.shift(n) - 1.0)


def _volatility(n: int) -> pl.Expr:
    daily = CLOSE / CLOSE.shift(1) - 1.0
    return per_symbol(daily.rolling_std(n, ddof=1))


def _gap(n: int) -> pl.Expr:
    return per_symbol(CLOSE / sma(CLOSE, n) - 1.0)


def _macd_hist() -> pl.Expr:
    _, _, hist = macd(CLOSE, 12, 26, 9)
    return per_symbol(hist) / CLOSE


#: Per-stock features: name → expression over long bars sorted by (symbol, date).
STOCK_FEATURES: dict[str, Callable[[], pl.Expr]] = {
    "ret_1": lambda: _ret(1),
    "ret_5": lambda: _ret(5),
    "ret_20": lambda: _ret(20),
    "vol_20": lambda: _volatility(20),
    "rsi_14": lambda: per_symbol(rsi(CLOSE, 14)) / 100.0,
    "sma20_gap": lambda: _gap(20),
    "sma50_gap": lambda: _gap(50),
    "macd_hist": _macd_hist,
    "atr_pct": lambda: per_symbol(atr(pl.col("high"), pl.col("low"), CLOSE, 14)) / CLOSE,
    "volume_ratio_20": lambda: per_symbol(volume_ratio(pl.col("volume").cast(pl.Float64), 20)),
}

#: Market-breadth features (the same value for every symbol on a date).
BREADTH_FEATURES: dict[str, Callable[[], pl.Expr]] = {
    "b_mcclellan_ratio": lambda: pl.col("mcclellan_osc_ratio"),
    "b_pct_above_sma20": lambda: pl.col("pct_above_sma20") / 100.0,
    "b_pct_above_sma50": lambda: pl.col("pct_above_sma50") / 100.0,
    "b_hl_index": lambda: pl.col("hl_index") / 100.0,
    "b_ad_momentum_10": lambda: (
        (pl.col("ad_line") - pl.col("ad_line").shift(10))
        / (pl.col("advances") + pl.col("declines") + pl.col("unchanged"))
    ),
    "b_zbt": lambda: pl.col("zbt"),
}

FEATURES: tuple[str, ...] = (*STOCK_FEATURES, *BREADTH_FEATURES)
#: Bars of history the longest feature window needs (MACD 26+9, SMA 50, A/D momentum).
WARMUP_BARS = 60


def check_features(names: Sequence[str] | None) -> list[str]:
    """The feature list, checked; None means all of :data:`FEATURES`."""
    if names is None:
        return list(FEATURES)
    chosen = list(dict.fromkeys(str(n).strip() for n in names))
    unknown = [n for n in chosen if n not in FEATURES]
    if unknown or not chosen:
        raise InvalidInputError(
            f"unknown feature(s) {', '.join(unknown) or '(none given)'} — known: "
            f"{', '.join(FEATURES)}"
        )
    return chosen


def check_horizon(horizon: object) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= 250:
        raise InvalidInputError(
            f"invalid horizon {horizon!r} — expected a whole number of bars from 1 to 250"
        )
    return horizon


def warmup_bars(hl_window: int) -> int:
    """History before the first wanted date that the features need to settle."""
    return max(WARMUP_BARS, hl_window + 1)


def build_features(
    bars: pl.DataFrame, features: Sequence[str] | None = None, hl_window: int = 252
) -> pl.DataFrame:
    """``symbol, date, <features…>`` for every bar; nulls where a window is not full yet.

    ``bars``: long daily bars (``symbol, date, open, high, low, close, volume``). Breadth
    features come from the breadth table of *all* symbols in ``bars`` (the universe).
    """
    names = check_features(features)
    if bars.height == 0:
        return pl.DataFrame(
            schema={S: pl.String, "date": pl.Date, **dict.fromkeys(names, pl.Float64)}
        )
    ordered = bars.sort(S, "date")
    stock = [n for n in names if n in STOCK_FEATURES]
    frame = ordered.select(
        S, "date", *(STOCK_FEATURES[n]().cast(pl.Float64).alias(n) for n in stock)
    )
    market = [n for n in names if n in BREADTH_FEATURES]
    if market:
        table = breadth_table(ordered, hl_window=hl_window).sort("date")
        breadth = table.select(
            "date", *(BREADTH_FEATURES[n]().cast(pl.Float64).alias(n) for n in market)
        )
        frame = frame.join(breadth, on="date", how="left")
    # NaN (0/0 in a ratio) is treated like a missing value: null.
    return frame.select(S, "date", *(pl.col(n).fill_nan(None) for n in names))


def build_labels(bars: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """``symbol, date, label``: the forward return over the next ``horizon`` bars of the
    same symbol (null for the last ``horizon`` bars, whose future is unknown)."""
    horizon = check_horizon(horizon)
    ordered = bars.sort(S, "date")
    return ordered.select(
        S,
        "date",
        per_symbol(CLOSE.shift(-horizon) / CLOSE - 1.0).cast(pl.Float64).alias(LABEL),
    )


def build_dataset(
    bars: pl.DataFrame,
    horizon: int,
    features: Sequence[str] | None = None,
    hl_window: int = 252,
    drop_incomplete: bool = True,
) -> pl.DataFrame:
    """Features joined with labels, sorted by ``(date, symbol)``. With
    ``drop_incomplete``, rows missing a feature or the label are dropped."""
    names = check_features(features)
    frame = build_features(bars, names, hl_window).join(
        build_labels(bars, horizon), on=[S, "date"], how="left"
    )
    if drop_incomplete:
        frame = frame.drop_nulls([*names, LABEL])
    return frame.sort("date", S)
