"""Indicators over long-format bars: per-symbol technicals (:mod:`.technical`).

Pure functions of Polars frames and expressions; nothing here does I/O or looks ahead.
"""

from breadthflow.indicators.technical import (
    INDICATORS,
    Indicator,
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
