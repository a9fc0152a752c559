"""Checkpoints of one run: what is already done, so an interrupted run resumes.

Keys name a unit of work: a whole step (``"fetch"``) or one symbol of a step
(``"fetch:AAPL"``). A checkpoint is written only *after* its unit of work is finished,
so a crash between the two redoes that one unit — work must be idempotent per unit
(the lake's upserts and the signal table's unique key make ours so).

Values are small JSON objects (counts, paths of what was written), kept in memory after
the first read: one query per run, one write per finished unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breadthflow.store.runs import RunRepository


def step_key(step: str) -> str:
    """The checkpoint key of a whole step."""
    return step


def symbol_key(step: str, symbol: str) -> str:
    """The checkpoint key of one symbol of a step."""
    return f"{step}:{symbol}"


class Checkpoints:
    """The checkpoints of run ``run_id``.

    >>> marks = Checkpoints(repo, "run-0123456789ab")          # doctest: +SKIP
    >>> marks.mark("fetch:AAPL", {"rows": 252})                 # doctest: +SKIP
    >>> marks.done("fetch:AAPL"), marks.get("fetch:AAPL")       # doctest: +SKIP
    (True, {'rows': 252})
    """

    def __init__(self, repo: RunRepository, run_id: str) -> None:
        self.repo = repo
        self.run_id = run_id
        self._values: dict[str, dict[str, Any]] | None = None

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._values is None:
            self._values = self.repo.checkpoints(self.run_id)
        return self._values

    def reload(self) -> None:
        """Forget the cached values (after another process changed them)."""
        self._values = None

    def done(self, key: str) -> bool:
        return key in self._loaded()

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._loaded().get(key)
        return dict(value) if value is not None else None

    def mark(self, key: str, value: Mapping[str, Any] | None = None) -> None:
        """Record ``key`` as done (committed before returning)."""
        stored = dict(value or {})
        self.repo.save_checkpoint(self.run_id, key, stored)
        self._loaded()[key] = stored

    def keys(self) -> list[str]:
        return sorted(self._loaded())

    def clear(self) -> int:
        self._values = {}
        return self.repo.clear_checkpoints(self.run_id)
