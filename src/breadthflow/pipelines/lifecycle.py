"""The run lifecycle: ``initialize → execute → cleanup``, recorded step by step.

A pipeline kind subclasses :class:`PipelineLifecycle` and fills in the hooks; ``run()``
does the rest, the same way for every kind:

- marks the run ``running`` (a queued run is started; a claimed one is taken as is),
  writes a heartbeat in the background, and tags log lines with the run id;
- records every :meth:`~PipelineLifecycle.step` in ``run_steps`` (duration, detail,
  error) and every :meth:`~PipelineLifecycle.log` line in ``run_logs`` (``WARNING`` and
  above from any ``breadthflow`` logger during the run are captured too);
- applies the pipeline's error policy per symbol (:meth:`~PipelineLifecycle.for_each_symbol`):
  ``retry`` retries with backoff, then records the symbol's error and goes on; ``skip``
  records and goes on; ``stop`` fails the run at the first error;
- checkpoints every finished symbol and step, and skips them when the run resumes;
- stops between units of work on SIGTERM/SIGINT or a ``cancel`` of the run (the run
  ends ``cancelled``, checkpoints kept for the next attempt);
- always calls ``cleanup()``, then records the outcome — ``succeeded``, ``partial``
  (errors, but work done), ``failed`` or ``cancelled`` — with counts, CPU seconds and peak
  memory, then evaluates the alert rules (:mod:`~breadthflow.pipelines.alerts`): a new
  alert is stored and sent as a ``failure`` notification, a good run after a failed one
  sends a ``recovery``.

>>> class Daily(PipelineLifecycle):                              # doctest: +SKIP
...     def execute(self) -> None:
...         done = self.for_each_symbol("fetch", self.definition.symbols, fetch_one)
...         with self.step("breadth") as step:
...             if not step.resumed:
...                 step.detail["rows"] = compute_breadth(done.succeeded)
>>> Daily(RunRepository(db), run_id, definition).run().status  # doctest: +SKIP
'succeeded'

Resuming: checkpoints belong to a run. Requeuing an interrupted run
(:meth:`RunRepository.requeue`) runs it again as its next attempt and skips what its
checkpoints say is done; a *new* run can take them over with ``resume_from=old_run_id``.
A step body must check ``step.resumed`` (a ``with`` block cannot skip itself), or use
:meth:`PipelineLifecycle.run_step`, which does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from breadthflow.core.errors import (
    BreadthFlowError,
    ConfigError,
    InvalidInputError,
    NotFoundError,
)
from breadthflow.core.logging import current_run_id, run_context
from breadthflow.pipelines.alerts import AlertMonitor
from breadthflow.pipelines.checkpoints import Checkpoints, step_key, symbol_key
from breadthflow.pipelines.definitions import ErrorPolicy, PipelineDefinition
from breadthflow.pipelines.notify import Notifier
from breadthflow.pipelines.resources import ResourceMeter
from breadthflow.pipelines.retry import retry_call
from breadthflow.pipelines.shutdown import GracefulShutdown, ShutdownRequested
from breadthflow.pipelines.shutdown import logger as shutdown_logger
from breadthflow.store.runs import RunRepository, RunSummary

logger = logging.getLogger("breadthflow.pipelines")

T = TypeVar("T")

#: Marks a std-logging record already written to ``run_logs`` by :meth:`PipelineLifecycle.log`.
_STORED = "breadthflow_run_log_stored"
MAX_ERROR_CHARS = 2000
MAX_STEP_ERRORS = 50  # per-symbol errors kept in a step's detail; the count is always whole


def default_worker() -> str:
    """``host:pid`` — who runs a run, shown in ``pipeline runs``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def describe(error: BaseException) -> str:
    """An error as stored on a run or step: a user error's own line, else ``Type: text``."""
    if isinstance(error, BreadthFlowError | RunFailed):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}".rstrip(": ")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class RunFailed(Exception):
    """A unit of work failed under the ``stop`` error policy: the run fails."""


class RunOutcome(BaseModel):
    """How a run ended, as recorded."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    status: str
    symbols_processed: int
    signals_generated: int
    error_count: int
    error: str | None
    duration: float | None
    cpu_seconds: float | None
    peak_memory_mb: float | None
    notification: str | None = None
    channels: list[str] = []


@dataclass
class RunCounts:
    """Counters a run fills in; recorded on the run when it ends."""

    symbols_processed: int = 0
    signals_generated: int = 0
    error_count: int = 0


@dataclass
class StepHandle:
    """What a step body sees: whether the step is already done (``resumed``), and the
    ``detail`` dict recorded with it (restored from the checkpoint when resumed).
    Setting ``status`` to ``partial`` or ``failed`` records the step so without raising."""

    name: str
    resumed: bool
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = "succeeded"


@dataclass
class SymbolResults:
    """The result of :meth:`PipelineLifecycle.for_each_symbol`."""

    step: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> list[str]:
        """Symbols done in this run or an earlier attempt, in input order."""
        return list(self.values)


class PipelineLifecycle(ABC):
    """Base class of a pipeline run. Override :meth:`execute` (and, when needed,
    :meth:`initialize` and :meth:`cleanup`), then call :meth:`run`.

    ``shutdown``: share one :class:`GracefulShutdown` across runs in a worker; without
    it, ``run()`` installs its own SIGTERM/SIGINT handlers (main thread only) for the
    length of the run. ``sleep``/``rng`` make retries testable.
    """

    def __init__(
        self,
        repo: RunRepository,
        run_id: str,
        definition: PipelineDefinition,
        *,
        worker: str | None = None,
        shutdown: GracefulShutdown | None = None,
        notifier: Notifier | None = None,
        monitor: AlertMonitor | None = None,
        resume_from: str | None = None,
        heartbeat_interval: float = 15.0,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.definition = definition
        self.worker = worker or default_worker()
        self.shutdown = shutdown or GracefulShutdown()
        self._owns_shutdown = shutdown is None
        self.notifier = notifier if notifier is not None else Notifier(definition.notifications)
        self.monitor = monitor if monitor is not None else AlertMonitor(repo.db)
        self.resume_from = resume_from
        self.heartbeat_interval = heartbeat_interval
        self.checkpoints = Checkpoints(repo, run_id)
        self.counts = RunCounts()
        #: Set by a pipeline that backtests; stored on the run.
        self.backtest_results: dict[str, Any] | None = None
        #: The run record as it was when the run started.
        self.record: RunSummary | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._cancelled = threading.Event()
        self._current_step: str | None = None
        self._processed: set[str] = set()
        self._work_done = False
        self._had_symbols = False
        self._first_error: str | None = None
        self._recorded_steps: dict[str, str] | None = None

    # --- hooks ------------------------------------------------------------------------------

    def initialize(self) -> None:  # noqa: B027 — optional hook
        """Prepare the run (open connections, load the universe). Default: nothing."""

    @abstractmethod
    def execute(self) -> None:
        """Do the work, in steps."""

    def cleanup(self) -> None:  # noqa: B027 — optional hook
        """Release what :meth:`initialize` took. Always called, even after an error,
        a shutdown or Ctrl-C. Default: nothing."""

    def should_retry(self, error: Exception) -> bool:
        """Whether a failed unit of work is worth retrying: not for user mistakes."""
        return not isinstance(error, InvalidInputError | NotFoundError | ConfigError)

    # --- logging and stopping ---------------------------------------------------------------

    def log(self, level: str | int, message: str) -> None:
        """Write a line to the run's log (``pipeline logs``) and to std logging."""
        levelno = level if isinstance(level, int) else logging.getLevelName(level.upper())
        if not isinstance(levelno, int):
            raise ValueError(f"unknown log level {level!r}")
        try:
            self.repo.log(self.run_id, levelno, message, step=self._current_step)
        except Exception as error:  # a log line must never be what breaks a run
            logger.warning(
                "could not store a log line of run %s: %s",
                self.run_id,
                error,
                extra={_STORED: True},
            )
        logger.log(levelno, "%s", message, extra={_STORED: True})

    @property
    def should_stop(self) -> bool:
        """True once a shutdown or a cancel of this run was requested."""
        return self.shutdown.requested or self._cancelled.is_set()

    def check_stop(self) -> None:
        """Raise :class:`ShutdownRequested` when the run should stop; call it between
        units of work in loops of your own."""
        if self.shutdown.requested:
            raise ShutdownRequested(self.shutdown.reason or "shutdown requested")
        if self._cancelled.is_set():
            raise ShutdownRequested("run cancelled")

    # --- steps ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str, *, optional: bool = False) -> Iterator[StepHandle]:
        """Record the block as step ``name``.

        An exception marks the step ``failed`` with the error and is re-raised (the run
        fails) — except for an ``optional`` step under the ``retry`` or ``skip`` policy,
        whose error is counted and the run goes on (it ends ``partial``). A step that
        finished in an earlier attempt yields ``resumed=True``: skip the work then.
        """
        self.check_stop()
        key = step_key(name)
        if self.checkpoints.done(key):
            handle = StepHandle(name, resumed=True, detail=self.checkpoints.get(key) or {})
            self._record_resumed(name, handle.detail)
            self._work_done = True
            yield handle
            return
        handle = StepHandle(name, resumed=False)
        step_id = self.repo.start_step(self.run_id, name)
        previous, self._current_step = self._current_step, name
        started = time.perf_counter()
        try:
            yield handle
        except (ShutdownRequested, KeyboardInterrupt) as stop:
            handle.detail["interrupted"] = True
            self.repo.finish_step(step_id, "partial", handle.detail, f"interrupted: {stop}")
            raise
        except Exception as error:
            text = describe(error)
            self.repo.finish_step(step_id, "failed", handle.detail, text)
            self.log("error", f"step {name} failed: {text}")
            if optional and self.definition.error_policy is not ErrorPolicy.STOP:
                self._count_error(text)
                return
            raise
        else:
            status = handle.status
            self.repo.finish_step(step_id, status, handle.detail)
            if status == "succeeded":
                self.checkpoints.mark(key, handle.detail)
            if status != "failed":
                self._work_done = True
            elapsed = time.perf_counter() - started
            self.log("info", f"step {name} {status} in {elapsed:.2f}s")
        finally:
            self._current_step = previous

    def run_step(
        self, name: str, fn: Callable[[], Mapping[str, Any] | None], *, optional: bool = False
    ) -> dict[str, Any]:
        """Run ``fn`` as step ``name`` (retried under the ``retry`` policy) unless it is
        already done; returns the step's detail (``fn``'s dict, or the checkpoint's)."""
        with self.step(name, optional=optional) as step:
            if not step.resumed:
                step.detail.update(self._attempt(fn, f"step {name}") or {})
        return step.detail

    def for_each_symbol(
        self,
        step_name: str,
        symbols: Iterable[str],
        fn: Callable[[str], Mapping[str, Any] | None],
    ) -> SymbolResults:
        """Run ``fn(symbol)`` for every symbol as step ``step_name``.

        Each finished symbol is checkpointed (with ``fn``'s dict, which must be JSON), so
        a resumed run skips it; the shutdown flag is checked before each symbol; errors
        follow the pipeline's error policy.
        """
        ordered = list(dict.fromkeys(symbols))
        self._had_symbols = self._had_symbols or bool(ordered)
        results = SymbolResults(step=step_name)
        stop_at_error = self.definition.error_policy is ErrorPolicy.STOP
        with self.step(step_name) as step:
            if step.resumed:
                for symbol in ordered:
                    value = self.checkpoints.get(symbol_key(step_name, symbol))
                    results.values[symbol] = value or {}
                results.resumed = list(ordered)
                self._mark_processed(ordered)
                return results
            for symbol in ordered:
                self.check_stop()
                key = symbol_key(step_name, symbol)
                if self.checkpoints.done(key):
                    results.values[symbol] = self.checkpoints.get(key) or {}
                    results.resumed.append(symbol)
                    self._mark_processed([symbol])
                    continue
                try:
                    value = self._attempt(lambda s=symbol: fn(s), f"{step_name} {symbol}")
                except Exception as error:
                    text = describe(error)
                    results.errors[symbol] = text
                    self._count_error(f"{symbol}: {text}")
                    self.log("warning", f"{step_name} {symbol} failed: {text}")
                    _symbol_detail(step.detail, ordered, results)
                    if stop_at_error:
                        raise RunFailed(f"step {step_name} stopped at {symbol}: {text}") from error
                    continue
                stored = dict(value) if isinstance(value, Mapping) else {}
                self.checkpoints.mark(key, stored)
                results.values[symbol] = stored
                self._mark_processed([symbol])
            _symbol_detail(step.detail, ordered, results)
            if results.errors:
                step.status = "partial" if results.values else "failed"
        return results

    # --- running ----------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        """Run the lifecycle and record it; see the module docstring."""
        record = self.repo.get(self.run_id)
        if record.status == "queued":
            record = self.repo.start(self.run_id, self.worker)
        elif record.status == "running":
            self.worker = record.worker or self.worker
        else:
            raise InvalidInputError(
                f"run {self.run_id} is {record.status} — only a queued or running run can run"
            )
        self.record = record
        installed = self.shutdown.install() if self._owns_shutdown else False
        try:
            return self._run(record)
        finally:
            if installed:
                self.shutdown.restore()

    def _run(self, record: RunSummary) -> RunOutcome:
        meter = ResourceMeter()
        with run_context(self.run_id), _Heartbeat(self), _RunLogCapture(self), meter:
            status, error, interrupt = self._execute(record)
            cleanup_error, cleanup_interrupt = self._cleanup()
        interrupt = interrupt or cleanup_interrupt
        if cleanup_interrupt is not None and status != "failed":
            status = "cancelled"
        status, error = self._final_status(status, error, cleanup_error)
        summary = self.repo.finish(
            self.run_id,
            status,
            symbols_processed=self.counts.symbols_processed,
            signals_generated=self.counts.signals_generated,
            error_count=self.counts.error_count,
            error=error,
            backtest_results=self.backtest_results,
            cpu_seconds=meter.cpu_seconds,
            peak_memory_mb=meter.peak_memory_mb,
        )
        if status == "succeeded":
            # Nothing left to resume; partial/failed/cancelled runs keep theirs.
            self.repo.clear_checkpoints(self.run_id)
        event, channels = self._notify(summary)
        if interrupt is not None:
            raise interrupt
        return RunOutcome(
            run_id=self.run_id,
            status=status,
            symbols_processed=summary.symbols_processed,
            signals_generated=summary.signals_generated,
            error_count=summary.error_count,
            error=error,
            duration=summary.duration,
            cpu_seconds=summary.cpu_seconds,
            peak_memory_mb=summary.peak_memory_mb,
            notification=event,
            channels=channels,
        )

    def _execute(self, record: RunSummary) -> tuple[str, str | None, BaseException | None]:
        """initialize + execute → (status, error, an interrupt to re-raise at the end)."""
        try:
            if self.resume_from:
                copied = self.repo.copy_checkpoints(self.resume_from, self.run_id)
                self.checkpoints.reload()
                self.log("info", f"resuming from run {self.resume_from} ({copied} checkpoints)")
            done = len(self.checkpoints.keys())
            resumed = f", resuming after {done} checkpoints" if done else ""
            self.log(
                "info",
                f"run of pipeline {self.definition.name} started "
                f"(attempt {record.attempt}, worker {self.worker}{resumed})",
            )
            self.initialize()
            self.check_stop()
            self.execute()
        except ShutdownRequested as stop:
            self.log("warning", f"run cancelled ({stop}) — checkpoints kept for a resume")
            return "cancelled", f"cancelled: {stop}", None
        except KeyboardInterrupt as interrupt:
            self.log("warning", "run interrupted — checkpoints kept for a resume")
            return "cancelled", "interrupted", interrupt
        except Exception as error:
            text = describe(error)
            if not isinstance(error, BreadthFlowError | RunFailed):
                logger.error("run %s failed", self.run_id, exc_info=error, extra={_STORED: True})
            self.log("error", f"run failed: {text}")
            return "failed", text, None
        except BaseException as error:  # SystemExit and the like: record, then let it go
            return "failed", describe(error), error
        return "succeeded", None, None

    def _cleanup(self) -> tuple[str | None, BaseException | None]:
        try:
            self.cleanup()
        except Exception as error:
            text = describe(error)
            logger.error(
                "cleanup of run %s failed", self.run_id, exc_info=error, extra={_STORED: True}
            )
            self.log("error", f"cleanup failed: {text}")
            self.counts.error_count += 1
            return text, None
        except BaseException as error:
            return None, error
        return None, None

    def _final_status(
        self, status: str, error: str | None, cleanup_error: str | None
    ) -> tuple[str, str | None]:
        if status == "succeeded" and self._cancelled.is_set() and not self._work_done:
            status = "cancelled"
        if status == "succeeded" and (self.counts.error_count or cleanup_error):
            # With symbols to process, "work done" means at least one symbol was; a
            # pipeline without per-symbol steps counts finished steps instead.
            done = self.counts.symbols_processed if self._had_symbols else self._work_done
            if done:
                status = "partial"
            else:
                status = "failed"
                error = f"{self.counts.error_count} errors and nothing done — first: " + (
                    self._first_error or cleanup_error or "unknown"
                )
        if error is None and cleanup_error is not None:
            error = f"cleanup failed: {cleanup_error}"
        return status, error

    def _notify(self, summary: RunSummary) -> tuple[str | None, list[str]]:
        """Evaluate the alert rules on the finished run; new alerts are stored and sent
        (``failure``), a good run after a failed one sends a ``recovery``."""
        try:
            report = self.monitor.after_run(self.definition, summary, self.notifier)
        except Exception as error:  # alerting never changes a run's outcome
            logger.warning("alerts of run %s could not be evaluated: %s", self.run_id, error)
            return None, []
        for alert in report.alerts:
            self.log("warning", f"alert {alert.id} ({alert.rule}): {alert.message}")
        if report.channels:
            sent = ", ".join(report.channels)
            self.log("info", f"{report.notification} notification sent ({sent})")
        return report.notification, report.channels

    # --- internals --------------------------------------------------------------------------

    def _attempt(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn`` once, or with retries under the ``retry`` policy."""
        if self.definition.error_policy is not ErrorPolicy.RETRY:
            return fn()

        def on_retry(attempt: int, error: Exception, delay: float) -> None:
            self.log(
                "warning",
                f"{what}: attempt {attempt} failed ({describe(error)}) — retrying in {delay:.2f}s",
            )

        return retry_call(
            fn,
            self.definition.retry_policy,
            should_retry=self.should_retry,
            sleep=self._wait,
            rng=self._rng,
            on_retry=on_retry,
        )

    def _wait(self, seconds: float) -> None:
        """Sleep between retries; a shutdown or cancel ends the wait and the run."""
        self.check_stop()
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0 and not self.should_stop:
                self.shutdown.wait(min(left, 0.5))
        self.check_stop()

    def _count_error(self, text: str) -> None:
        self.counts.error_count += 1
        if self._first_error is None:
            self._first_error = text

    def _mark_processed(self, symbols: Iterable[str]) -> None:
        self._work_done = True
        for symbol in symbols:
            if symbol not in self._processed:
                self._processed.add(symbol)
                self.counts.symbols_processed += 1

    def _record_resumed(self, name: str, detail: Mapping[str, Any]) -> None:
        """Show a step done in an earlier attempt: kept as is when this run recorded it,
        else (checkpoints taken over from another run) recorded as ``skipped``."""
        if self._recorded_steps is None:
            self._recorded_steps = {s.name: s.status for s in self.repo.steps(self.run_id)}
        if self._recorded_steps.get(name) == "succeeded":
            return
        step_id = self.repo.start_step(self.run_id, name)
        self.repo.finish_step(step_id, "skipped", {**detail, "resumed": True})
        self._recorded_steps[name] = "skipped"
        self.log("info", f"step {name} already done — skipped")


def _symbol_detail(detail: dict[str, Any], symbols: list[str], results: SymbolResults) -> None:
    detail.update(
        symbols=len(symbols),
        done=len(results.values),
        resumed=len(results.resumed),
        failed=len(results.errors),
    )
    if results.errors:
        detail["errors"] = dict(list(results.errors.items())[:MAX_STEP_ERRORS])


class _Heartbeat:
    """Writes the run's heartbeat every ``heartbeat_interval`` seconds from a thread, so
    a long unit of work does not look like a dead worker; notices a cancel of the run."""

    def __init__(self, lifecycle: PipelineLifecycle) -> None:
        self.lifecycle = lifecycle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.lifecycle.heartbeat_interval > 0:
            self._thread = threading.Thread(
                target=self._loop, name=f"heartbeat-{self.lifecycle.run_id}", daemon=True
            )
            self._thread.start()
        return self

    def _loop(self) -> None:
        lifecycle = self.lifecycle
        while not self._stop.wait(lifecycle.heartbeat_interval):
            try:
                alive = lifecycle.repo.heartbeat(lifecycle.run_id, lifecycle.worker)
            except Exception as error:  # the DB may be back next time
                logger.warning("heartbeat of run %s failed: %s", lifecycle.run_id, error)
                continue
            if not alive:
                logger.warning(
                    "run %s is no longer running for this worker (cancelled?) — stopping "
                    "after the current unit of work",
                    lifecycle.run_id,
                )
                lifecycle._cancelled.set()
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _RunLogCapture(logging.Handler):
    """Copies WARNING+ records of ``breadthflow`` loggers, written by this run's code
    (the run id is in the logging context), into ``run_logs``."""

    def __init__(self, lifecycle: PipelineLifecycle) -> None:
        super().__init__(level=logging.WARNING)
        self.lifecycle = lifecycle
        self._busy = threading.local()
        self._logger = logging.getLogger("breadthflow")

    def __enter__(self) -> _RunLogCapture:
        self._logger.addHandler(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._logger.removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, _STORED, False) or current_run_id() != self.lifecycle.run_id:
            return
        if record.name == shutdown_logger.name:
            return
        if getattr(self._busy, "active", False):  # a log line written while storing one
            return
        self._busy.active = True
        try:
            self.lifecycle.repo.log(
                self.lifecycle.run_id,
                record.levelno if record.levelno in _LEVELS else logging.WARNING,
                record.getMessage(),
                step=self.lifecycle._current_step,
            )
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False


_LEVELS = {logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL}
