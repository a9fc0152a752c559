"""The scheduler, local workers and trigger dispatcher inside the serving process
(``breadthflow serve``).

With both, this is the :class:`~breadthflow.pipelines.runner.Runner` itself on a thread:
it holds ``$HOME/runner.lock`` and writes ``runner.pid``, so ``pipeline start`` refuses a
second runner and ``pipeline status`` / ``/health`` see this one. With only one of the two
(``--no-worker`` or ``--no-scheduler``, to run them as separate processes), the scheduler
loop or the runner's worker threads run alone and take no lock (schedulers and workers are
safe in numbers). The trigger dispatcher (signal → pipeline runs) runs on its own thread,
and with an external bus (Redis, Kafka, NATS) so does the outbox relay that forwards the
events recorded in the metadata DB.
Stopping asks every thread to finish its current unit of work — a
running run ends ``cancelled`` with its checkpoints kept, and resumes when requeued.
"""

from __future__ import annotations

import logging
import threading
import time

from breadthflow.bus._base import split_url
from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.pipelines.runner import Runner, runner_state
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.services.context import AppContext
from breadthflow.services.health import InProcess

log = logging.getLogger("breadthflow.api.background")

START_TIMEOUT = 30.0


class Background:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`state` is for ``/health``."""

    def __init__(
        self,
        ctx: AppContext,
        scheduler: bool = True,
        workers: int = 2,
        poll: float = 1.0,
        dispatcher: bool = False,
        warm_scan: bool = False,
    ) -> None:
        if workers < 0:
            raise InvalidInputError(f"invalid worker count {workers} — expected 0 or more")
        self.ctx = ctx
        self.scheduler = scheduler
        self.workers = workers
        self.runner = Runner(ctx, concurrency=max(workers, 1), poll=poll)
        # With a remote executor (Celery) the runner forwards runs instead of executing
        # them: there are no local worker threads to watch.
        self.local_executor = ctx.settings.executor_url.strip() in ("", "local")
        self.dispatcher = dispatcher
        self.warm_scan = warm_scan
        self._threads: list[threading.Thread] = []
        self._main: threading.Thread | None = None
        self._dispatch: threading.Thread | None = None
        self._relay: threading.Thread | None = None
        self._error: BaseException | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads; raises (one line) when a runner already serves this home."""
        self._start_runner()
        if self.warm_scan:  # scans (API, dashboard, pipeline steps) answer warm from the first
            from breadthflow.services.scan import warm_up

            warm_up()
        if self.dispatcher:
            self._dispatch = threading.Thread(target=self._run_dispatcher, name="dispatcher",
                                              daemon=True)  # fmt: skip
            self._dispatch.start()
        if split_url(self.ctx.settings.bus_url)[0] not in EMBEDDED_SCHEMES:
            # Events are recorded in the metadata DB with the change that caused them
            # (the outbox); with an external bus, this process forwards them.
            self._relay = threading.Thread(target=self._run_relay, name="relay", daemon=True)
            self._relay.start()

    def _start_runner(self) -> None:
        if self.scheduler and self.workers:
            state = runner_state(self.ctx)
            if state.alive:
                raise BreadthFlowError(
                    f"a runner is already running for {self.ctx.settings.home} (pid "
                    f"{state.pid}) — `breadthflow pipeline stop` it, or serve with "
                    "--no-scheduler --no-worker"
                )
            self._main = threading.Thread(target=self._serve_runner, name="runner", daemon=True)
            self._main.start()
            self._wait_started()
        elif self.scheduler:
            self._main = threading.Thread(target=self._schedule, name="scheduler", daemon=True)
            self._main.start()
        elif self.workers:
            for n in range(1, self.workers + 1):
                # The runner's own worker loop, without its scheduler (see the module doc).
                thread = threading.Thread(
                    target=self.runner._work, args=(n,), name=f"worker-{n}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _serve_runner(self) -> None:
        try:
            self.runner.serve()
        except BaseException as exc:
            self._error = exc
            log.error("the in-process runner stopped: %s", exc)

    def _schedule(self) -> None:
        from breadthflow.pipelines.scheduler import Scheduler

        try:
            Scheduler(self.ctx.db).run_forever(self.runner.shutdown, self.runner.poll)
        except BaseException as exc:
            self._error = exc
            log.error("the in-process scheduler stopped: %s", exc)

    def _run_dispatcher(self) -> None:
        from breadthflow.services.triggers import run_dispatcher

        try:
            run_dispatcher(self.ctx, self.runner.shutdown)
        except BaseException as exc:
            log.error("the in-process trigger dispatcher stopped: %s", exc)

    def _run_relay(self) -> None:
        from breadthflow.bus import open_bus
        from breadthflow.bus.relay import Relay

        shutdown = self.runner.shutdown
        try:
            bus = open_bus(self.ctx.settings.bus_url, self.ctx.settings, self.ctx.db)
        except BaseException as exc:
            log.error("the in-process outbox relay could not start: %s", exc)
            return
        try:
            Relay(self.ctx.db, bus).run(_ShutdownEvent(shutdown))
        except BaseException as exc:
            log.error("the in-process outbox relay stopped: %s", exc)
        finally:
            bus.close()

    def _wait_started(self) -> None:
        import os

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._error is not None:
                raise (
                    self._error
                    if isinstance(self._error, BreadthFlowError)
                    else (BreadthFlowError(f"the runner could not start: {self._error}"))
                )
            # The runner writes its pid file, then starts its worker threads.
            if runner_state(self.ctx).pid == os.getpid() and (
                not self.local_executor or self._runner_workers() >= self.workers
            ):
                return
            time.sleep(0.02)
        raise BreadthFlowError(f"the runner did not start within {START_TIMEOUT:.0f}s")

    @staticmethod
    def _runner_workers() -> int:
        # The runner names its worker threads worker-1 … worker-N.
        return sum(
            1 for t in threading.enumerate() if t.name.startswith("worker-") and t.is_alive()
        )

    def stop(self, timeout: float = 120.0) -> None:
        """Ask every thread to finish its current unit of work, and wait for them."""
        self.runner.shutdown.request("the server is stopping")
        deadline = time.monotonic() + timeout
        threads = (self._main, self._dispatch, self._relay, *self._threads)
        for thread in [t for t in threads if t is not None]:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s still busy after %.0fs; leaving it", thread.name, timeout)

    # --- for /health --------------------------------------------------------------------

    def state(self) -> InProcess:
        main_alive = self._main is not None and self._main.is_alive()
        if self.scheduler and self.workers:
            alive = self._runner_workers() if main_alive else 0
        else:
            alive = sum(1 for t in self._threads if t.is_alive())
        return InProcess(
            scheduler=self.scheduler,
            scheduler_alive=self.scheduler and main_alive,
            workers=self.workers if self.local_executor else 0,
            workers_alive=min(alive, self.workers) if self.local_executor else 0,
            dispatcher=self.dispatcher,
            dispatcher_alive=self._dispatch is not None and self._dispatch.is_alive(),
            scan_kernels_loaded=self.warm_scan and _scan_kernels_loaded(),
        )


#: Bus URL schemes whose events live in the metadata DB itself (nothing to relay).
EMBEDDED_SCHEMES = ("sqlite", "postgres", "postgresql", "")


class _ShutdownEvent:
    """A :class:`GracefulShutdown` seen as the ``threading.Event`` the relay loop expects."""

    def __init__(self, shutdown: GracefulShutdown) -> None:
        self.shutdown = shutdown

    def is_set(self) -> bool:
        return self.shutdown.requested

    def wait(self, seconds: float | None = None) -> bool:
        return self.shutdown.wait(seconds if seconds is not None else 1e9)


def _scan_kernels_loaded() -> bool:
    from breadthflow.services.scan import warmed_up

    return warmed_up()
