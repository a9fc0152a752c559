"""Graceful shutdown: SIGTERM/SIGINT finish the current unit of work, then stop.

The first signal only sets a flag; the lifecycle checks it between units of work
(symbols, steps) and ends the run ``cancelled``. Its checkpoints are kept, so requeuing
the run (or a new run resuming from it) continues after the last finished unit instead
of starting over. A second signal means "now": it raises :class:`KeyboardInterrupt`
wherever the code is, and the run is recorded ``cancelled`` on the way out.

Signal handlers can only be installed from the main thread. Elsewhere (a worker thread)
:meth:`GracefulShutdown.install` does nothing and the flag is set with
:meth:`GracefulShutdown.request` by whoever owns the process.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import Any

# Its own logger: the run-log capture skips it, because a handler that writes to the
# database must not run inside a signal handler (the interrupted frame may hold the
# SQLite write lock).
logger = logging.getLogger("breadthflow.pipelines.shutdown")


class ShutdownRequested(BaseException):
    """Raised between units of work once a shutdown was requested.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that a pipeline's own
    ``except Exception`` cannot swallow it.
    """


class GracefulShutdown:
    """A shutdown flag, set by SIGTERM/SIGINT while installed.

    >>> with GracefulShutdown() as shutdown:                    # doctest: +SKIP
    ...     for symbol in symbols:
    ...         if shutdown.requested:
    ...             break
    ...         process(symbol)
    """

    def __init__(self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = tuple(signals)
        self.reason: str | None = None
        self._event = threading.Event()
        self._previous: dict[signal.Signals, Any] = {}

    # --- the flag ---------------------------------------------------------------------------

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str = "shutdown requested") -> None:
        """Ask for a stop after the current unit of work (what the first signal does)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on a shutdown request; True if requested."""
        return self._event.wait(max(0.0, seconds))

    def check(self) -> None:
        """Raise :class:`ShutdownRequested` when a shutdown was requested."""
        if self._event.is_set():
            raise ShutdownRequested(self.reason or "shutdown requested")

    # --- signal handlers --------------------------------------------------------------------

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> bool:
        """Install the handlers (main thread only); False when they could not be."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._event.is_set():
            logger.warning("received %s again — stopping now", name)
            raise KeyboardInterrupt(f"{name} received twice")
        logger.warning(
            "received %s — finishing the current unit of work, then stopping "
            "(send it again to stop at once)",
            name,
        )
        self.request(f"{name} received")

    def __enter__(self) -> GracefulShutdown:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()
