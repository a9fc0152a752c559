"""Fit and evaluate one walk-forward fold; fit the final model. Pure.

``dataset`` is what :func:`breadthflow.signals.features.build_dataset` returns: one row
per ``(symbol, date)`` with the feature columns and ``label``, complete rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.ml.estimators import make_estimator, score, target
from breadthflow.ml.evaluation import evaluate_scores
from breadthflow.ml.folds import Fold
from breadthflow.signals.features import LABEL


def _matrix(frame: pl.DataFrame, features: Sequence[str]) -> np.ndarray:
    return frame.select(features).to_numpy().astype(np.float64)


def fit(
    train: pl.DataFrame, features: Sequence[str], estimator: str, params: Mapping[str, Any]
) -> tuple[Any, str]:
    """A fitted estimator (rows in time order, never shuffled) and its task."""
    if train.height < 10:
        raise InvalidInputError(
            f"only {train.height} training rows — widen the date range or the universe"
        )
    model, task = make_estimator(estimator, params)
    model.fit(_matrix(train, features), target(train[LABEL].to_numpy(), task))
    return model, task


def run_fold(
    dataset: pl.DataFrame,
    fold: Fold,
    features: Sequence[str],
    estimator: str,
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Train on the fold's training window, score its test window: (metrics, predictions)."""
    date = pl.col("date")
    train = dataset.filter(date.is_between(fold.train_start, fold.train_end))
    test = dataset.filter(date.is_between(fold.test_start, fold.test_end))
    model, task = fit(train, features, estimator, params)
    scored = test.select("date", "symbol", LABEL).with_columns(
        pl.Series("score", score(model, task, _matrix(test, features)))
    )
    metrics = evaluate_scores(scored, task) | {"train_rows": train.height}
    return metrics, scored
