"""Market-level strategies: one decision per date for the whole universe, from its breadth.

Their signals carry the universe name as ``symbol``. Definitions, with sources and the
meaning of ``confidence`` and ``strength``, are in docs/signals.md.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, model_validator

from breadthflow.core.models import SignalType
from breadthflow.indicators.breadth import MCCLELLAN_SLOW, SMA_WINDOWS
from breadthflow.signals.base import (
    Level,
    MarketData,
    Strategy,
    StrategyParams,
    register,
    signal_type,
)

# A z-score beyond ±3 standard deviations is clipped: one freak day must not dominate.
Z_CLIP = 3.0


def _market_frame(data: MarketData, signals: pl.Expr, **extra: pl.Expr) -> dict[str, pl.Expr]:
    return {"symbol": pl.lit(data.universe), "signal_type": signals, **extra}


# --- breadth_composite ----------------------------------------------------------------------


class CompositeWeights(StrategyParams):
    """Weight of each normalised breadth measure in the composite score."""

    mcclellan: float = Field(0.25, ge=0, description="ratio-adjusted McClellan oscillator")
    pct_above_sma: float = Field(0.25, ge=0, description="% of symbols above their SMA")
    hl_index: float = Field(0.20, ge=0, description="high-low index")
    ad_momentum: float = Field(0.15, ge=0, description="change of the A/D line")
    zbt: float = Field(0.15, ge=0, description="Zweig breadth-thrust EMA")

    @model_validator(mode="after")
    def _some_weight(self) -> CompositeWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("weights must not all be zero")
        return self


class BreadthCompositeParams(StrategyParams):
    window: int = Field(63, ge=5, description="rolling window (bars) of the z-scores")
    min_periods: int = Field(20, ge=2, description="bars a window needs before scoring")
    momentum: int = Field(10, ge=1, description="A/D line momentum look-back (bars)")
    sma: int = Field(50, description="which % above SMA column: 20, 50 or 200")
    buy_threshold: float = Field(0.35, gt=0, le=1, description="score >= this is BUY")
    sell_threshold: float = Field(0.35, gt=0, le=1, description="score <= -this is SELL")
    min_weight: float = Field(0.5, gt=0, le=1, description="share of weight needed on a date")
    weights: CompositeWeights = Field(default_factory=CompositeWeights)

    @model_validator(mode="after")
    def _consistent(self) -> BreadthCompositeParams:
        if self.sma not in SMA_WINDOWS:
            raise ValueError(f"sma={self.sma} — expected one of {', '.join(map(str, SMA_WINDOWS))}")
        if self.min_periods > self.window:
            raise ValueError(f"min_periods={self.min_periods} exceeds window={self.window}")
        return self


def _zscore(x: pl.Expr, window: int, min_periods: int) -> pl.Expr:
    """Trailing z-score of ``x`` over the last ``window`` bars including today, clipped to
    ±3 and scaled to ±1. Only past and present values enter: causal by construction."""
    mean = x.rolling_mean(window, min_samples=min_periods)
    std = x.rolling_std(window, min_samples=min_periods)
    z = pl.when(std > 0).then((x - mean) / std).when(std == 0).then(0.0)
    return z.clip(-Z_CLIP, Z_CLIP) / Z_CLIP


@register
class BreadthComposite(Strategy):
    name = "breadth_composite"
    level = Level.MARKET
    description = "weighted score of normalised breadth measures → BUY / SELL / HOLD regime"
    Params = BreadthCompositeParams
    emits_hold = True

    def warmup_bars(self) -> int:
        p: Any = self.params
        return p.window + p.sma + MCCLELLAN_SLOW

    def measures(self) -> dict[str, pl.Expr]:
        """The raw breadth measures, named as the weights are."""
        p: Any = self.params
        ad = pl.col("ad_line")
        return {
            "mcclellan": pl.col("mcclellan_osc_ratio"),
            "pct_above_sma": pl.col(f"pct_above_sma{p.sma}"),
            "hl_index": pl.col("hl_index"),
            "ad_momentum": ad - ad.shift(p.momentum),
            "zbt": pl.col("zbt"),
        }

    def scores(self, breadth: pl.DataFrame) -> pl.DataFrame:
        """Per date: each measure, its z-score, the share of weight scored, and ``score``
        (weighted mean of the z-scores present; null when less than ``min_weight``)."""
        p: Any = self.params
        weights = p.weights.model_dump()
        total = sum(weights.values())
        frame = breadth.sort("date").with_columns(
            **{f"{k}_value": e for k, e in self.measures().items()}
        )
        frame = frame.with_columns(
            **{f"{k}_z": _zscore(pl.col(f"{k}_value"), p.window, p.min_periods) for k in weights}
        )
        present = [pl.when(pl.col(f"{k}_z").is_not_null()).then(w).otherwise(0.0)
                   for k, w in weights.items()]  # fmt: skip
        weighted = [pl.col(f"{k}_z") * w for k, w in weights.items()]
        frame = frame.with_columns(
            (pl.sum_horizontal(present) / total).alias("weight_scored"),
            pl.sum_horizontal(weighted).alias("_weighted"),
        )
        score = pl.when(pl.col("weight_scored") >= p.min_weight).then(
            pl.col("_weighted") / (pl.col("weight_scored") * total)
        )
        return frame.with_columns(score.alias("score")).drop("_weighted")

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        scored = self.scores(data.breadth).filter(pl.col("score").is_not_null())
        s = pl.col("score")
        buy, sell = s >= p.buy_threshold, s <= -p.sell_threshold
        # 0.5 at the threshold rising to 1 at a score of ±1; a HOLD is surest at 0.
        confidence = (
            pl.when(buy)
            .then(0.5 + 0.5 * (s - p.buy_threshold) / max(1 - p.buy_threshold, 1e-9))
            .when(sell)
            .then(0.5 + 0.5 * (-s - p.sell_threshold) / max(1 - p.sell_threshold, 1e-9))
            .when(s >= 0)
            .then(1 - s / p.buy_threshold)
            .otherwise(1 - (-s) / p.sell_threshold)
        )
        names = list(p.weights.model_dump())
        factors = pl.struct(
            pl.col("score"),
            pl.col("weight_scored"),
            *(pl.col(f"{k}_z") for k in names),
            *(pl.col(f"{k}_value") for k in names),
        )
        return scored.select(
            "date",
            **_market_frame(
                data,
                signal_type(buy, sell),
                confidence=confidence.clip(0.0, 1.0),
                strength=s,
                factors=factors,
            ),
        )


# --- zweig_thrust ---------------------------------------------------------------------------


class ZweigParams(StrategyParams):
    low: float = Field(0.40, gt=0, lt=1, description="the EMA must have been below this …")
    high: float = Field(0.615, gt=0, lt=1, description="… and then close above this")
    within: int = Field(10, ge=1, description="… within this many trading days")

    @model_validator(mode="after")
    def _ordered(self) -> ZweigParams:
        if self.low >= self.high:
            raise ValueError(f"low={self.low} must be below high={self.high}")
        return self


@register
class ZweigThrust(Strategy):
    name = "zweig_thrust"
    level = Level.MARKET
    description = "Zweig breadth thrust: BUY when the 10-day EMA of A/(A+D) rockets up"
    Params = ZweigParams

    def warmup_bars(self) -> int:
        return self.params.within + 30  # type: ignore[attr-defined]

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        zbt = pl.col("zbt")
        # The lowest EMA value of the previous `within` days (today excluded).
        prior_low = zbt.shift(1).rolling_min(p.within, min_samples=1)
        thrust = ((zbt > p.high) & (prior_low < p.low)).fill_null(False)
        starts = thrust & ~thrust.shift(1).fill_null(False)  # the first day of a thrust
        confidence = ((zbt - p.low) / (2 * (p.high - p.low))).clip(0.0, 1.0)
        return (
            data.breadth.sort("date")
            .with_columns(prior_low.alias("prior_low"))
            .select(
                "date",
                **_market_frame(
                    data,
                    signal_type(starts, pl.lit(False)),
                    confidence=confidence,
                    strength=zbt,
                    factors=pl.struct(zbt, pl.col("prior_low")),
                ),
            )
        )


# --- mcclellan_reversal ---------------------------------------------------------------------


class McClellanParams(StrategyParams):
    level: float = Field(70.0, gt=0, description="turn up from below -level / down from above")
    ratio_adjusted: bool = Field(False, description="use the ratio-adjusted oscillator")


@register
class McClellanReversal(Strategy):
    name = "mcclellan_reversal"
    level = Level.MARKET
    description = "McClellan oscillator turns up from below -70 (BUY) / down from above +70"
    Params = McClellanParams

    def warmup_bars(self) -> int:
        return 3 * MCCLELLAN_SLOW

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        osc = pl.col("mcclellan_osc_ratio" if p.ratio_adjusted else "mcclellan_osc")
        prev, before = osc.shift(1), osc.shift(2)
        # A turn is a local extreme: yesterday was the lowest (highest) of three days.
        buy = (prev < -p.level) & (osc > prev) & (prev <= before)
        sell = (prev > p.level) & (osc < prev) & (prev >= before)
        return data.breadth.sort("date").select(
            "date",
            **_market_frame(
                data,
                signal_type(buy, sell),
                confidence=(prev.abs() / (2 * p.level)).clip(0.0, 1.0).fill_null(0.0),
                strength=prev,
                factors=pl.struct(osc.alias("oscillator"), prev.alias("previous")),
            ),
        )


__all__ = [
    "BreadthComposite",
    "BreadthCompositeParams",
    "CompositeWeights",
    "McClellanReversal",
    "SignalType",
    "ZweigThrust",
]
