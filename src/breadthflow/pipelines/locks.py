"""A per-pipeline process lock: two runners never run the same pipeline at once.

The lock is an OS file lock (``flock`` on Unix, ``LockFileEx`` on Windows, through
:mod:`filelock`), so the kernel releases it when the holding process dies, even by
``SIGKILL``: there is no stale lock to clean up. The holder's pid goes into a sidecar
file next to it, only to say who holds it in the error message.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from breadthflow.core.errors import BreadthFlowError


class LockHeldError(BreadthFlowError):
    """Another process holds the lock."""

    exit_code = 6
    http_status = 409


def pipeline_lock(home: Path, pipeline: str) -> ProcessLock:
    """The lock of one pipeline, under ``HOME/locks``."""
    return ProcessLock(Path(home) / "locks" / f"pipeline-{pipeline}.lock", label=pipeline)


class ProcessLock:
    """An exclusive lock across processes. Keep a reference while holding it: the
    lock is also released when the object is garbage-collected.

    >>> lock = pipeline_lock(home, "daily")                     # doctest: +SKIP
    >>> with lock:                                              # doctest: +SKIP
    ...     run_pipeline()                                      # raises if held
    """

    def __init__(self, path: Path | str, label: str | None = None) -> None:
        self.path = Path(path)
        self.pid_path = self.path.with_name(self.path.name + ".pid")
        self.label = label or self.path.stem
        # thread_local=False: the lock belongs to the process, whichever thread took it.
        self._lock = FileLock(str(self.path), thread_local=False)

    @property
    def is_locked(self) -> bool:
        """Whether *this* object holds the lock."""
        return self._lock.is_locked

    def holder_pid(self) -> int | None:
        """The pid written by the current (or last) holder, if readable."""
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def acquire(self, timeout: float = 0) -> ProcessLock:
        """Take the lock, waiting up to ``timeout`` seconds; raise :class:`LockHeldError`
        (one line, with the holder's pid) when another process keeps it. Taking a lock
        this object already holds does nothing (``with lock.acquire(timeout=5):`` works)."""
        if self._lock.is_locked:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            pid = self.holder_pid()
            holder = f" (pid {pid})" if pid is not None else ""
            raise LockHeldError(
                f"pipeline {self.label} is already running{holder} — wait for it to finish "
                "or stop that process"
            ) from None
        self.pid_path.write_text(f"{os.getpid()}\n")
        return self

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        self._lock.release(force=True)

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
