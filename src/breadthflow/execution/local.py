"""The ``local`` executor: the run queue lives in the metadata DB and the runner's own
worker pool (:class:`breadthflow.pipelines.runner.Runner`) claims from it.

Nothing is sent anywhere: a queued run *is* submitted. This wrapper only exists so that
the runner asks every executor the same questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from breadthflow.core.errors import ConfigError

if TYPE_CHECKING:
    from breadthflow.pipelines.shutdown import GracefulShutdown
    from breadthflow.store.db import Database


@dataclass(frozen=True)
class LocalExecutor:
    """Runs execute in the runner's worker threads (``pipeline start --concurrency N``)."""

    scheme: str = "local"
    in_process: bool = True

    @classmethod
    def from_url(cls, url: str) -> LocalExecutor:
        if url.strip().lower() != "local":
            raise ConfigError(f"invalid executor URL '{url}' — the local executor is just 'local'")
        return cls()

    def submit(self, run_id: str, attempt: int = 1) -> bool:
        """Nothing to do: the worker pool claims queued runs from the DB."""
        return False

    def forward(self, db: Database, shutdown: GracefulShutdown, poll: float = 1.0) -> None:
        """Nothing to forward; returns at once (the runner's pool does the work)."""

    def describe(self) -> str:
        return "local (runner worker pool, queue in the metadata DB)"
