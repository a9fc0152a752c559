"""``model_prediction``: a trained model's scores as BUY/SELL/HOLD, one row per stock and day.

The strategy stays pure: it never opens the model registry itself. The service layer
installs a *predictor source* (:func:`set_predictor_source`) that returns a
:class:`Predictor` for ``(model, version)``; the strategy asks it for one, builds the
model's features from the bars it is given (``signals.features``: only data up to each
date) and scores them.

- ``BUY`` where ``score > buy_above``, ``SELL`` where ``score < sell_below``, nothing
  otherwise (HOLD rows are not emitted);
- ``confidence`` = ``|score - threshold| / band`` clipped to 0–1 (threshold = the one crossed);
- ``strength`` = the score (predicted forward return, or ``P(up) - 0.5`` for classifiers);
- ``factors`` = ``{model, version, score}``.

Without a ``model`` the strategy produces no signals (so "every strategy" loops such as
``breadthflow demo`` pass over it); with an unknown model it fails with one line. It is
marked ``needs_model``: checks that every strategy signals on the bare sample data
(the causality tests) leave it out — tests/pipelines/test_training.py checks its
causality with a trained model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from breadthflow.core.errors import ConfigError
from breadthflow.signals.base import Level, MarketData, Strategy, StrategyParams, register
from breadthflow.signals.features import build_features
from breadthflow.signals.features import warmup_bars as feature_warmup


class Predictor(Protocol):
    """A loaded model version: what it needs and how it scores."""

    name: str
    version: int
    features: list[str]
    hl_window: int

    def score(self, x: np.ndarray) -> np.ndarray: ...


PredictorSource = Callable[[str, int | None], Predictor]
_sources: list[PredictorSource] = []


def set_predictor_source(source: PredictorSource | None) -> None:
    """Install (or, with None, remove) the function that loads model versions."""
    _sources.clear()
    if source is not None:
        _sources.append(source)


def predictor_for(model: str, version: int | None) -> Predictor:
    if not _sources:
        raise ConfigError(
            "model_prediction needs the model registry — run it through breadthflow's "
            "services (CLI, API or a pipeline), which install it"
        )
    return _sources[0](model, version)


class ModelPredictionParams(StrategyParams):
    model: str = Field("", description="registered model name (`models list`); empty: no signals")
    version: int | None = Field(
        None, ge=1, description="model version; none: the production version, else the newest"
    )
    buy_above: float = Field(0.0, description="score above this -> BUY")
    sell_below: float = Field(0.0, description="score below this -> SELL")
    band: float = Field(
        0.02, gt=0, description="score distance from the threshold for full confidence"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ModelPredictionParams:
        if self.sell_below > self.buy_above:
            raise ValueError(
                f"sell_below={self.sell_below} must not be above buy_above={self.buy_above}"
            )
        return self


EMPTY_SCHEMA = {
    "symbol": pl.String,
    "date": pl.Date,
    "signal_type": pl.String,
    "confidence": pl.Float64,
    "strength": pl.Float64,
    "factors": pl.Struct({"model": pl.String, "version": pl.Int64, "score": pl.Float64}),
}


@register
class ModelPrediction(Strategy):
    name = "model_prediction"
    level = Level.SYMBOL
    description = (
        "a trained model's score per stock (`models list`): above buy_above BUY, below "
        "sell_below SELL"
    )
    Params = ModelPredictionParams
    needs_model: ClassVar[bool] = True  # signals only with a trained model

    def __init__(self, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        self._predictor: Predictor | None = None

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            p: Any = self.params
            self._predictor = predictor_for(p.model, p.version)
        return self._predictor

    def warmup_bars(self) -> int:
        if not self.params.model:  # type: ignore[attr-defined]
            return 0
        return feature_warmup(self.predictor.hl_window)

    def evaluate(self, data: MarketData) -> pl.DataFrame:
        p: Any = self.params
        if not p.model or data.bars.height == 0:
            return pl.DataFrame(schema=EMPTY_SCHEMA)
        predictor = self.predictor
        features = build_features(data.bars, predictor.features, predictor.hl_window)
        complete = features.drop_nulls(predictor.features)
        if complete.height == 0:
            return pl.DataFrame(schema=EMPTY_SCHEMA)
        x = complete.select(predictor.features).to_numpy().astype(np.float64)
        scored = complete.select("symbol", "date").with_columns(
            pl.Series("score", predictor.score(x), dtype=pl.Float64)
        )
        score = pl.col("score")
        buy, sell = score > p.buy_above, score < p.sell_below
        threshold = pl.when(buy).then(p.buy_above).otherwise(p.sell_below)
        return scored.select(
            "symbol",
            "date",
            signal_type=pl.when(buy)
            .then(pl.lit("BUY"))
            .when(sell)
            .then(pl.lit("SELL"))
            .otherwise(pl.lit("HOLD")),
            confidence=((score - threshold).abs() / p.band).clip(0.0, 1.0),
            strength=score,
            factors=pl.struct(
                pl.lit(predictor.name).alias("model"),
                pl.lit(predictor.version, dtype=pl.Int64).alias("version"),
                score,
            ),
        )
