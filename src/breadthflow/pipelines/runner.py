"""The long-lived runner: scheduler ticks plus a pool of workers consuming the run queue.

``breadthflow pipeline start`` launches ``breadthflow pipeline serve`` as a background
process (its own session, output in ``$HOME/logs/runner.log``) and returns once the
runner has written its PID file; ``pipeline stop`` sends it SIGTERM and waits. The runner:

- holds ``$HOME/runner.lock`` (one runner per home) and writes ``$HOME/runner.pid``;
- in the main thread, ticks the :class:`~breadthflow.pipelines.scheduler.Scheduler`
  (due runs enqueued once, stale runs of dead workers requeued or failed);
- in ``concurrency`` worker threads, claims queued runs (at most one running run per
  pipeline, at most ``concurrency`` in all) and runs each through its lifecycle;
- on SIGTERM/SIGINT stops claiming, lets every worker finish its current unit of work
  (the run ends ``cancelled`` with its checkpoints kept, and resumes when requeued),
  removes its PID file and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.execution import open_executor
from breadthflow.pipelines._process import pid_alive
from breadthflow.pipelines.lifecycle import default_worker
from breadthflow.pipelines.locks import LockHeldError, ProcessLock
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.services.context import AppContext
from breadthflow.store.runs import RunRepository

log = logging.getLogger("breadthflow.pipelines.runner")

PID_FILE = "runner.pid"
LOCK_FILE = "runner.lock"
LOG_FILE = "runner.log"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class RunnerState:
    pid: int | None
    alive: bool


def pid_path(ctx: AppContext) -> Path:
    return ctx.settings.home / PID_FILE


def runner_state(ctx: AppContext) -> RunnerState:
    """Whether a runner is alive for this home (a stale PID file counts as not alive)."""
    try:
        pid = int(pid_path(ctx).read_text().strip())
    except (OSError, ValueError):
        return RunnerState(None, False)
    return RunnerState(pid, _alive(pid))


def _alive(pid: int) -> bool:
    return pid_alive(pid)


class Runner:
    """Scheduler + workers in one process. :meth:`serve` blocks until shut down."""

    def __init__(
        self,
        ctx: AppContext,
        concurrency: int = 2,
        poll: float = 1.0,
        heartbeat_interval: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise InvalidInputError(f"invalid concurrency {concurrency} — expected 1 or more")
        self.ctx = ctx
        self.concurrency = concurrency
        self.poll = poll
        self.heartbeat_interval = heartbeat_interval
        self.shutdown = GracefulShutdown()
        self.worker = default_worker()

    def serve(self) -> None:
        from breadthflow.pipelines.scheduler import Scheduler
        from breadthflow.services.alerts import alert_monitor

        home = self.ctx.settings.home
        executor = open_executor(self.ctx.settings.executor_url)  # a bad URL: one line, now
        home.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(home / LOCK_FILE, label="runner")
        try:
            lock.acquire(timeout=0)
        except LockHeldError as exc:
            raise BreadthFlowError(f"a runner is already running for {home} ({exc})") from None
        self.shutdown.install()
        pid_path(self.ctx).write_text(f"{os.getpid()}\n")
        workers = [
            threading.Thread(target=self._work, args=(n,), name=f"worker-{n}", daemon=True)
            for n in range(1, self.concurrency + 1)
        ]
        if not executor.in_process:  # remote workers execute; this thread forwards to them
            workers = [threading.Thread(target=executor.forward, name="forwarder", daemon=True,
                                        args=(self.ctx.db, self.shutdown, self.poll))]  # fmt: skip
        log.info("runner %s serving %s: %s, %d local workers", self.worker, home,
                 executor.describe(), len(workers) if executor.in_process else 0)  # fmt: skip
        try:
            for thread in workers:
                thread.start()
            scheduler = Scheduler(self.ctx.db, monitor=alert_monitor(self.ctx))
            while not self.shutdown.requested:
                try:
                    scheduler.tick()
                except Exception:  # a DB hiccup must not kill the runner
                    log.exception("scheduler tick failed; retrying")
                self.shutdown.wait(self.poll)
            log.info("runner stopping: waiting for the current work to finish")
            for thread in workers:
                thread.join()
        finally:
            with contextlib.suppress(OSError):
                pid_path(self.ctx).unlink()
            self.shutdown.restore()
            lock.release()
            log.info("runner stopped")

    def _work(self, number: int) -> None:
        from breadthflow.services.alerts import alert_monitor
        from breadthflow.services.pipelines import lifecycle_for
        from breadthflow.store.pipelines import PipelineRepository

        repo = RunRepository(self.ctx.db)
        name = f"{self.worker}/{number}"
        while not self.shutdown.requested:
            try:
                run = repo.claim_next(name, pipeline_limit=1, total_limit=self.concurrency)
            except Exception:
                log.exception("claiming a run failed; retrying")
                self.shutdown.wait(self.poll * 5)
                continue
            if run is None:
                self.shutdown.wait(self.poll)
                continue
            try:
                stored = PipelineRepository(self.ctx.db).get_by_id(run.pipeline_id)
                lifecycle = lifecycle_for(self.ctx, stored, run.run_id, self.shutdown,
                                          self.heartbeat_interval)  # fmt: skip
                lifecycle.worker = name
                outcome = lifecycle.run()
                log.info("run %s of %s: %s", run.run_id, stored.name, outcome.status)
            except BaseException as exc:  # never lose a worker thread
                log.exception("run %s could not be executed", run.run_id)
                with contextlib.suppress(Exception):
                    if repo.mark_failed(run.run_id, str(exc) or type(exc).__name__):
                        alert_monitor(self.ctx).after_run_id(run.run_id)


def start_background(ctx: AppContext, concurrency: int = 2) -> int:
    """Launch ``breadthflow pipeline serve`` detached; return its pid once it is up."""
    state = runner_state(ctx)
    if state.alive:
        raise BreadthFlowError(
            f"the runner is already running (pid {state.pid}) — `breadthflow pipeline stop` first"
        )
    home = ctx.settings.home
    logs = ctx.settings.logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        pid_path(ctx).unlink()
    env = {**os.environ, "BREADTHFLOW_HOME": str(home)}
    with open(logs / LOG_FILE, "ab") as output:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no user text
            [sys.executable, "-m", "breadthflow", "pipeline", "serve",
             "--concurrency", str(concurrency)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BreadthFlowError(
                f"the runner exited at start (code {process.returncode}) — see {logs / LOG_FILE}"
            )
        if runner_state(ctx).pid == process.pid:
            return process.pid
        time.sleep(0.1)
    process.terminate()
    raise BreadthFlowError(f"the runner did not start within {START_TIMEOUT:.0f}s — see {logs}")


def stop_background(ctx: AppContext, timeout: float = 120.0) -> int | None:
    """SIGTERM the runner and wait until it has finished its current work and exited.
    Returns the pid that was stopped, or None when no runner was alive."""
    state = runner_state(ctx)
    if not state.alive or state.pid is None:
        with contextlib.suppress(OSError):
            pid_path(ctx).unlink()
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(state.pid):
            return state.pid
        time.sleep(0.2)
    raise BreadthFlowError(
        f"the runner (pid {state.pid}) is still finishing after {timeout:.0f}s — run "
        "`breadthflow pipeline stop` again to wait longer"
    )
