"""Per-symbol strategies: events on each stock's own technicals, optionally gated by breadth.

They emit rows only where something happens (a cross), never HOLD. Definitions and the
meaning of ``confidence`` and ``strength`` are in docs/signals.md.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, model_validator

from breadthflow.indicators.technical import per_symbol, rsi, sma
from breadthflow.signals.base import (
    Level,
    MarketData,
    Strategy,
    StrategyParams,
    crossed_above,
    crossed_below,
    register,
    signal_type,
)
from breadthflow.signals.market import BreadthComposite, BreadthCompositeParams

S = "symbol"
CLOSE = pl.col("close")


# --- sma_cross / golden_cross -------------------------------------------------------------


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=2, description="fast SMA (bars)")
    slow: int = Field(30, ge=3, description="slow SMA (bars)")
    band: float = Field(
        0.10, gt=0, description="price distance from the slow SMA for full confidence"
    )

    @model_validator(mode="after")
    def _ordered(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast={self.fast} must be shorter than slow={self.slow}")
        return self


class GoldenCrossParams(SmaCrossParams):
    fast: int = Field(50, ge=2, description="fast SMA (bars)")
    slow: int = Field(200, ge=3, description="slow SMA (bars)")


@register
class SmaCross(Strategy):
    name = "sma_cross"
    level = Level.SYMBOL
    description = "fast SMA of close crosses above the slow SMA (BUY) / below it (SELL)"
    Params = SmaCrossParams

    def warmup_bars(self) -> int:
        return self.params.slow + 1  # type: ignore[attr-defined]

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        fast, slow = pl.col("fast_sma"), pl.col("slow_sma")
        frame = data.bars.select(S, "date", "close").with_columns(
            per_symbol(sma(CLOSE, p.fast)).alias("fast_sma"),
            per_symbol(sma(CLOSE, p.slow)).alias("slow_sma"),
        )
        return frame.select(
            S,
            "date",
            signal_type=signal_type(crossed_above(fast, slow, S), crossed_below(fast, slow, S)),
            confidence=((CLOSE - slow).abs() / (p.band * slow)).clip(0.0, 1.0).fill_null(0.0),
            strength=fast / slow - 1,
            factors=pl.struct(CLOSE, fast, slow),
        )


@register
class GoldenCross(SmaCross):
    """``sma_cross`` with the classic 50/200 windows."""

    name = "golden_cross"
    description = "SMA50 crosses above SMA200 (BUY, golden cross) / below (SELL, death cross)"
    Params = GoldenCrossParams


# --- rsi_reversion --------------------------------------------------------------------------


class RsiReversionParams(StrategyParams):
    period: int = Field(14, ge=2, description="RSI period (Wilder)")
    oversold: float = Field(30.0, gt=0, lt=100, description="BUY when RSI climbs back above")
    overbought: float = Field(70.0, gt=0, lt=100, description="SELL when RSI falls back below")
    lookback: int = Field(5, ge=1, description="bars searched for the extreme RSI")

    @model_validator(mode="after")
    def _ordered(self) -> RsiReversionParams:
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold={self.oversold} must be below overbought={self.overbought}")
        return self


# How many RSI points past the threshold the extreme must reach for full confidence.
RSI_FULL_CONFIDENCE_POINTS = 10.0


@register
class RsiReversion(Strategy):
    name = "rsi_reversion"
    level = Level.SYMBOL
    description = "RSI climbs back above oversold (BUY) / falls back below overbought (SELL)"
    Params = RsiReversionParams

    def warmup_bars(self) -> int:
        p: Any = self.params
        return 10 * p.period + p.lookback  # Wilder smoothing settles after ~10 periods

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        r = pl.col("rsi")
        frame = data.bars.select(S, "date", "close").with_columns(
            per_symbol(rsi(CLOSE, p.period)).alias("rsi")
        )
        frame = frame.with_columns(
            per_symbol(r.rolling_min(p.lookback, min_samples=1)).alias("rsi_low"),
            per_symbol(r.rolling_max(p.lookback, min_samples=1)).alias("rsi_high"),
        )
        buy, sell = crossed_above(r, p.oversold, S), crossed_below(r, p.overbought, S)
        depth = (
            pl.when(buy)
            .then(p.oversold - pl.col("rsi_low"))
            .otherwise(pl.col("rsi_high") - p.overbought)
        )
        confidence = (0.5 + 0.5 * depth / RSI_FULL_CONFIDENCE_POINTS).clip(0.0, 1.0)
        return frame.select(
            S,
            "date",
            signal_type=signal_type(buy, sell),
            confidence=confidence.fill_null(0.0),
            strength=r,
            factors=pl.struct(r, pl.col("rsi_low"), pl.col("rsi_high")),
        )


# --- breadth_filtered -----------------------------------------------------------------------


class BreadthFilteredParams(StrategyParams):
    sma: int = Field(20, ge=2, description="the stock's trend SMA (bars)")
    regime_threshold: float = Field(
        0.0, ge=-1, le=1, description="longs only while the breadth_composite score is above"
    )
    regime: BreadthCompositeParams = Field(
        default_factory=BreadthCompositeParams, description="parameters of the regime score"
    )


@register
class BreadthFiltered(Strategy):
    name = "breadth_filtered"
    level = Level.SYMBOL
    description = "close crosses its SMA; longs only while the market's breadth regime is bullish"
    Params = BreadthFilteredParams

    @property
    def needs_breadth(self) -> bool:
        return True

    def _regime(self) -> BreadthComposite:
        return BreadthComposite(self.params.regime)  # type: ignore[attr-defined]

    def warmup_bars(self) -> int:
        return max(self.params.sma + 1, self._regime().warmup_bars())  # type: ignore[attr-defined]

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        regime = (
            self._regime()
            .scores(data.breadth)
            .select("date", pl.col("score").alias("regime_score"))
        )
        trend, score = pl.col("trend_sma"), pl.col("regime_score")
        frame = (
            data.bars.select(S, "date", "close")
            .with_columns(per_symbol(sma(CLOSE, p.sma)).alias("trend_sma"))
            .join(regime, on="date", how="left", maintain_order="left")
        )
        buy = crossed_above(CLOSE, trend, S) & (score > p.regime_threshold)
        sell = crossed_below(CLOSE, trend, S)
        # Confidence follows the regime: surest buying into strong breadth, selling into weak.
        confidence = (
            pl.when(buy).then(0.5 + 0.5 * score).otherwise(0.5 - 0.5 * score.fill_null(0.0))
        )
        return frame.select(
            S,
            "date",
            signal_type=signal_type(buy, sell),
            confidence=confidence.clip(0.0, 1.0),
            strength=CLOSE / trend - 1,
            factors=pl.struct(CLOSE, trend, score),
        )
