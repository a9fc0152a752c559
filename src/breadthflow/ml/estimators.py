"""scikit-learn estimators by name, with checked parameters.

=============== ============== ==================================================================
name            task           model
=============== ============== ==================================================================
``ridge``       regression     standardise, then ridge regression (``alpha``)
``hgb``         regression     histogram gradient boosting (``max_iter``, ``learning_rate``,
                               ``max_depth``, ``min_samples_leaf``, ``l2_regularization``)
``logistic``    classification standardise, then logistic regression on ``label > 0`` (``C``)
=============== ============== ==================================================================

Every model yields a **score** whose sign is the predicted direction: the predicted
forward return (regression), or ``P(up) - 0.5`` (classification).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from breadthflow.core.errors import InvalidInputError, unknown_name


@dataclass(frozen=True)
class EstimatorSpec:
    task: str  # "regression" | "classification"
    defaults: dict[str, Any]
    build: Callable[[dict[str, Any]], BaseEstimator]


ESTIMATORS: dict[str, EstimatorSpec] = {
    "ridge": EstimatorSpec(
        "regression",
        {"alpha": 10.0},
        lambda p: make_pipeline(StandardScaler(), Ridge(alpha=float(p["alpha"]))),
    ),
    "hgb": EstimatorSpec(
        "regression",
        {
            "max_iter": 100,
            "learning_rate": 0.05,
            "max_depth": 3,
            "min_samples_leaf": 50,
            "l2_regularization": 1.0,
        },
        lambda p: HistGradientBoostingRegressor(
            max_iter=int(p["max_iter"]),
            learning_rate=float(p["learning_rate"]),
            max_depth=int(p["max_depth"]),
            min_samples_leaf=int(p["min_samples_leaf"]),
            l2_regularization=float(p["l2_regularization"]),
            early_stopping=False,  # a random validation split would shuffle time
            random_state=0,
        ),
    ),
    "logistic": EstimatorSpec(
        "classification",
        {"C": 1.0},
        lambda p: make_pipeline(
            StandardScaler(), LogisticRegression(C=float(p["C"]), max_iter=1000)
        ),
    ),
}


def estimator_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The estimator's defaults with ``params`` on top; unknown names or bad values refused."""
    if name not in ESTIMATORS:
        raise unknown_name("estimator", name, ESTIMATORS)
    spec = ESTIMATORS[name]
    given = dict(params or {})
    unknown = sorted(set(given) - set(spec.defaults))
    if unknown:
        raise InvalidInputError(
            f"unknown parameter(s) {', '.join(unknown)} for estimator {name} — known: "
            f"{', '.join(spec.defaults)}"
        )
    merged = {**spec.defaults, **given}
    for key, value in merged.items():
        default = spec.defaults[key]
        kind = int if isinstance(default, int) else float
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"invalid parameter {key}={value!r} for estimator {name} — expected a number"
            ) from None
        if number < 0 or (number == 0 and key not in ("l2_regularization",)):
            raise InvalidInputError(
                f"invalid parameter {key}={value!r} for estimator {name} — expected > 0"
            )
        merged[key] = number
    return merged


def make_estimator(name: str, params: Mapping[str, Any] | None = None) -> tuple[BaseEstimator, str]:
    """A new, unfitted estimator and its task."""
    merged = estimator_params(name, params)
    spec = ESTIMATORS[name]
    return spec.build(merged), spec.task


def target(labels: np.ndarray, task: str) -> np.ndarray:
    """What the estimator is fitted on: the forward return, or whether it is positive."""
    return (labels > 0).astype(np.int64) if task == "classification" else labels


def score(estimator: Any, task: str, x: np.ndarray) -> np.ndarray:
    """The model's score (sign = predicted direction) for the rows of ``x``."""
    if task == "classification":
        proba = estimator.predict_proba(x)
        classes = list(estimator.classes_)
        if 1 not in classes:  # trained on a window without a single up move
            return np.full(x.shape[0], -0.5)
        return proba[:, classes.index(1)] - 0.5
    return np.asarray(estimator.predict(x), dtype=np.float64)
