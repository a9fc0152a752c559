"""Executors: how queued pipeline runs get executed (``BREADTHFLOW_EXECUTOR_URL``)."""

from breadthflow.execution.registry import (
    Executor,
    executor_scheme,
    open_executor,
    register_executor,
)

__all__ = ["Executor", "executor_scheme", "open_executor", "register_executor"]
