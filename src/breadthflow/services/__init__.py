"""The service layer: one implementation of each action for the CLI, the API and pipelines."""

from __future__ import annotations

from typing import Any

from breadthflow.signals import model as _model_strategy


def _registry_predictor(name: str, version: int | None) -> Any:
    """Model versions for the ``model_prediction`` strategy, from the model registry (loaded
    on first use, so importing a service does not import scikit-learn)."""
    from breadthflow.services.models import registry_predictor

    return registry_predictor(name, version)


_model_strategy.set_predictor_source(_registry_predictor)
