"""Executors: who runs a queued pipeline run, chosen by ``BREADTHFLOW_EXECUTOR_URL``.

A run is always born ``queued`` in the metadata DB (the scheduler, the trigger dispatcher,
the API all enqueue there). An executor decides how queued runs get executed:

- ``local`` (default): the runner's worker pool (``breadthflow pipeline start``) claims
  them from the DB — nothing is sent anywhere (:mod:`breadthflow.execution.local`);
- ``celery+redis://host:port/db`` (and ``celery+rediss://``): the runner forwards each
  queued run as a Celery task to ``breadthflow worker`` processes on any machine
  (:mod:`breadthflow.execution.celery_executor`).

Either way a run executes through the same lifecycle code
(:func:`breadthflow.services.pipelines.lifecycle_for`).

>>> executor = open_executor("celery+redis://127.0.0.1:6379/0")  # doctest: +SKIP
>>> executor.submit("run-0123456789ab")                           # doctest: +SKIP
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from breadthflow.core.errors import ConfigError

if TYPE_CHECKING:
    from breadthflow.pipelines.shutdown import GracefulShutdown
    from breadthflow.store.db import Database


class Executor(Protocol):
    """What the runner needs from an executor."""

    #: The URL scheme it was opened with (``local``, ``celery+redis``, …).
    scheme: str
    #: True when runs execute inside the runner process (its worker pool claims them).
    in_process: bool

    def submit(self, run_id: str, attempt: int = 1) -> bool:
        """Hand one queued run to the workers; False when there is nothing to send
        (the local pool claims runs from the DB itself)."""
        ...

    def forward(self, db: Database, shutdown: GracefulShutdown, poll: float = 1.0) -> None:
        """Until ``shutdown``: hand every queued run of ``db`` to the workers (runs in a
        thread of the runner when ``in_process`` is False)."""
        ...

    def describe(self) -> str:
        """The executor in one line, password masked (for logs and ``status``)."""
        ...


_OPENERS: dict[str, Callable[[str], Executor]] = {}


def register_executor(scheme: str, opener: Callable[[str], Executor]) -> None:
    """Make ``opener(url)`` the executor for URLs of ``scheme``."""
    _OPENERS[scheme] = opener


def executor_scheme(url: str) -> str:
    """``local`` → ``local``; ``celery+redis://h:6379/0`` → ``celery+redis``."""
    text = url.strip()
    return text.split("://", 1)[0].lower() if "://" in text else text.lower()


def open_executor(url: str) -> Executor:
    """The executor for ``url``; a bad URL is one :class:`ConfigError` line."""
    _register_builtins()
    scheme = executor_scheme(url)
    opener = _OPENERS.get(scheme)
    if opener is None:
        known = ", ".join(sorted(_OPENERS))
        raise ConfigError(
            f"unknown executor '{url}' (BREADTHFLOW_EXECUTOR_URL) — expected one of: {known} "
            "(e.g. local or celery+redis://127.0.0.1:6379/0)"
        )
    return opener(url.strip())


def _register_builtins() -> None:
    if _OPENERS:
        return
    from breadthflow.execution.celery_executor import CeleryExecutor
    from breadthflow.execution.local import LocalExecutor

    register_executor("local", LocalExecutor.from_url)
    register_executor("celery+redis", CeleryExecutor.from_url)
    register_executor("celery+rediss", CeleryExecutor.from_url)
