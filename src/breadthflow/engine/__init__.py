"""Compute engines: where per-symbol work and breadth run (``BREADTHFLOW_ENGINE``)."""

from breadthflow.engine.registry import Engine, engine_scheme, open_engine, register_engine

__all__ = ["Engine", "engine_scheme", "open_engine", "register_engine"]
