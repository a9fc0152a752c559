"""The scheduler: turns due schedules into queued runs, and rescues runs of dead workers.

One :meth:`Scheduler.tick` is one pass over the metadata DB:

1. **Stale runs.** A run still ``running`` whose heartbeat is older than ``stale_after``
   — or whose worker is a process of this host that is gone — lost its worker: it is
   requeued as its next attempt (it resumes from its checkpoints), or marked failed once
   it used ``max_attempts``.
2. **Due pipelines.** Every active *periodic* pipeline whose ``next_run_at`` has come gets
   one queued run (trigger ``schedule``) for its latest due slot, and ``next_run_at`` moves
   to the first slot after now. Signal-mode pipelines are left to the trigger dispatcher.
   A pipeline without ``next_run_at`` (just created or enabled) only gets it computed.

3. **Late pipelines** (with a ``monitor``): the ``late`` alert rule
   (:meth:`~breadthflow.pipelines.alerts.AlertMonitor.check_late`).

Misfires are **coalesced**: when several slots were missed (the machine was off, the
scheduler stalled), only the most recent one runs; how many were skipped is logged,
reported in :class:`TickReport` and stored in the run's payload (``missed``).

Any number of schedulers may run against one database (several runners, a restart that
overlaps the old process). Each slot still fires once: ``(pipeline, scheduled_for)`` is
unique in ``pipeline_runs``, so the loser's enqueue returns ``None``; ``next_run_at`` only
ever moves forward (a guarded UPDATE); and a stale run is taken over by one scheduler only
(its heartbeat is compared-and-set before the requeue). Time comes from ``clock``, so
tests drive the scheduler with a fake one.

>>> scheduler = Scheduler(open_database(url))               # doctest: +SKIP
>>> scheduler.run_forever(GracefulShutdown().__enter__())   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter
from sqlalchemy import func, or_, select, update

from breadthflow.core.errors import BackendUnavailableError, BreadthFlowError
from breadthflow.pipelines._process import local_worker_dead
from breadthflow.pipelines.alerts import AlertMonitor
from breadthflow.pipelines.definitions import (
    PipelineDefinition,
    Schedule,
    TriggerMode,
    parse_schedule,
)
from breadthflow.store.db import Database
from breadthflow.store.models import PipelineRow, PipelineRunRow, utcnow
from breadthflow.store.pipelines import PipelineRepository, StoredPipeline
from breadthflow.store.runs import RunRepository, RunSummary

log = logging.getLogger("breadthflow.pipelines.scheduler")

#: Cron slots walked one by one before jumping straight to the latest (a long outage of a
#: frequent cron schedule); the missed count is then a lower bound.
MAX_CRON_STEPS = 10_000
#: Longest wait between two attempts while the database is unreachable.
MAX_BACKOFF = 30.0
#: Shortest sleep of :meth:`Scheduler.run_forever`, so a timer that wakes a hair before
#: a slot does not spin.
MIN_SLEEP = 0.01


@dataclass
class TickReport:
    """What one :meth:`Scheduler.tick` did."""

    #: Ids of the runs queued for due slots (a slot another scheduler queued first is not
    #: in here).
    enqueued: list[str] = field(default_factory=list)
    #: Missed slots skipped in favour of the latest one, over all pipelines.
    coalesced: int = 0
    #: Runs of dead workers queued again.
    recovered: list[str] = field(default_factory=list)
    #: Runs of dead workers marked failed (their last attempt).
    failed: list[str] = field(default_factory=list)
    #: Ids of ``late`` alerts fired by this tick.
    alerts: list[int] = field(default_factory=list)


def compute_next_run(
    pipeline: PipelineDefinition | StoredPipeline | Mapping[str, Any],
    now: dt.datetime | None = None,
) -> dt.datetime | None:
    """When a periodic pipeline is next due after ``now`` (UTC); None for a signal-mode
    pipeline or one without a schedule. Whether the pipeline is active is not looked at:
    the repository clears ``next_run_at`` of an inactive one.

    >>> compute_next_run(definition_from({"name": "x", "schedule": "5m"}),
    ...                  dt.datetime(2024, 1, 1, 9, 1, tzinfo=dt.UTC))  # doctest: +SKIP
    datetime.datetime(2024, 1, 1, 9, 5, tzinfo=datetime.timezone.utc)
    """
    schedule = _schedule_of(pipeline)
    return None if schedule is None else schedule.next_after(_utc(now or utcnow()))


class Scheduler:
    """Enqueue due runs and recover stale ones; see the module docstring."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
        max_attempts: int = 3,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        monitor: AlertMonitor | None = None,
    ) -> None:
        if stale_after <= dt.timedelta(0):
            raise ValueError(f"stale_after must be positive, got {stale_after}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, got {max_attempts}")
        self.db = db
        self.clock = clock
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        self.log = logger or log
        #: Evaluates the ``late`` alert rule after each tick (the runner passes one).
        self.monitor = monitor
        self.pipelines = PipelineRepository(db)
        self.runs = RunRepository(db)
        #: The clock's time at the start of the last :meth:`tick` that completed.
        self.last_tick_at: dt.datetime | None = None
        self._broken: dict[int, tuple[Any, ...]] = {}

    # --- one pass -------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Recover stale runs, then enqueue due slots. Database errors propagate (the
        caller retries); a pipeline whose stored schedule cannot be read is logged and
        skipped without holding up the others."""
        now = self._now()
        report = TickReport()
        self._recover_stale(now, report)
        active = self.pipelines.list(active_only=True)
        for stored in active:
            if stored.trigger_mode != TriggerMode.PERIODIC or not stored.schedule:
                continue
            if stored.next_run_at is not None and stored.next_run_at > now:
                continue
            try:
                self._schedule_pipeline(stored, now, report)
            except BackendUnavailableError:
                raise
            except Exception as exc:
                # Said once per broken definition, not once a second.
                key = (stored.schedule, stored.timezone, stored.updated_at)
                if self._broken.get(stored.id) != key:
                    self._broken[stored.id] = key
                    self.log.error(
                        "pipeline '%s': cannot schedule it (%s: %s) — skipped until it is fixed",
                        stored.name,
                        type(exc).__name__,
                        exc,
                        exc_info=not isinstance(exc, BreadthFlowError),
                    )
            else:
                self._broken.pop(stored.id, None)
        if self.monitor is not None:
            try:
                report.alerts = [alert.id for alert in self.monitor.check_late(now, active)]
            except BackendUnavailableError:
                raise
            except Exception:  # alerting must not stop scheduling
                self.log.exception("the late-pipeline check failed")
        self.last_tick_at = now
        return report

    def next_due(self) -> dt.datetime | None:
        """The earliest ``next_run_at`` of the active periodic pipelines; None when none
        has one (a pipeline without one yet gets it on the next tick)."""
        query = select(func.min(PipelineRow.next_run_at)).where(
            PipelineRow.is_active.is_(True),
            PipelineRow.trigger_mode == TriggerMode.PERIODIC.value,
            PipelineRow.schedule.is_not(None),
        )
        with self.db.session() as session:
            return session.scalar(query)

    # --- the loop -------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event | Any, interval: float = 1.0) -> None:
        """Tick until ``stop`` is set (a :class:`threading.Event`, or anything with a
        ``requested`` flag such as :class:`~breadthflow.pipelines.shutdown.GracefulShutdown`).

        Between ticks it sleeps until the earliest ``next_run_at`` but at most ``interval``
        seconds (stale runs are looked for every tick). A failing tick — the database
        restarting, a lock timeout — is logged and retried with a growing pause (up to
        :data:`MAX_BACKOFF` seconds); the loop only ends when asked to.
        """
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        failures = 0
        while not _stopped(stop):
            try:
                report = self.tick()
                due = self.next_due()
            except Exception as exc:
                failures += 1
                pause = min(MAX_BACKOFF, interval * 2 ** (failures - 1))
                if isinstance(exc, BreadthFlowError):
                    self.log.warning("scheduler tick failed (%s); retrying in %.1fs", exc, pause)
                else:
                    self.log.exception("scheduler tick failed; retrying in %.1fs", pause)
                _wait(stop, pause)
                continue
            if failures:
                self.log.info("scheduler recovered after %d failed tick(s)", failures)
                failures = 0
            if report.enqueued or report.recovered or report.failed:
                self.log.debug("tick: %s", report)
            pause = interval
            # A due time the tick already saw is one it could not handle (a broken
            # schedule): waiting for it would spin, so it waits for the interval.
            if due is not None and (self.last_tick_at is None or due > self.last_tick_at):
                until_due = (due - self._now()).total_seconds()
                pause = max(MIN_SLEEP, min(interval, until_due + MIN_SLEEP))
            _wait(stop, pause)

    # --- stale runs -----------------------------------------------------------------------

    def _recover_stale(self, now: dt.datetime, report: TickReport) -> None:
        # stale_running() measures from the real time; shift it so "stale" is measured
        # from the injected clock (identical with the real one).
        older_than = self.stale_after + (utcnow() - now)
        stale = {run.run_id: run for run in self.runs.stale_running(older_than)}
        # A worker of this host whose process is gone (kill -9, OOM) is dead for sure:
        # its run is taken over at once instead of after stale_after.
        gone = set()
        for run in self.runs.running_runs():
            if local_worker_dead(run.worker):
                gone.add(run.run_id)
                stale.setdefault(run.run_id, run)
        for run in sorted(stale.values(), key=lambda r: r.queued_at):
            if not self._take_over(run):
                continue  # another scheduler got it, or the worker came back to life
            seen = run.heartbeat_at or run.start_time
            who = f"worker {run.worker}" if run.worker else "its worker"
            since = f" since {seen:%Y-%m-%d %H:%M:%S} UTC" if seen else ""
            if run.run_id in gone:
                since += ", its process is gone"
            if run.attempt < self.max_attempts:
                if self.runs.requeue(run.run_id):
                    report.recovered.append(run.run_id)
                    message = (
                        f"{who} died (no heartbeat{since}) — queued again as attempt "
                        f"{run.attempt + 1} of {self.max_attempts}"
                    )
                    self.log.warning("run %s: %s", run.run_id, message)
                    self._run_log(run.run_id, message)
            else:
                error = (
                    f"worker died (no heartbeat{since}; {who}) on attempt {run.attempt} of "
                    f"{self.max_attempts} — not retried"
                )
                if self.runs.mark_failed(run.run_id, error):
                    report.failed.append(run.run_id)
                    self.log.error("run %s: %s", run.run_id, error)
                    self._run_log(run.run_id, error)
                    self._alert(run.run_id)

    def _take_over(self, run: RunSummary) -> bool:
        """Claim the recovery of a stale run: compare-and-set its heartbeat, so a second
        scheduler (whose view is now out of date) and a worker that was only slow both
        leave it alone."""
        guard = [
            PipelineRunRow.run_id == run.run_id,
            PipelineRunRow.status == "running",
            PipelineRunRow.attempt == run.attempt,
        ]
        if run.heartbeat_at is None:
            guard.append(PipelineRunRow.heartbeat_at.is_(None))
        else:
            guard.append(PipelineRunRow.heartbeat_at == run.heartbeat_at)
        with self.db.session() as session:
            result = session.execute(
                update(PipelineRunRow).where(*guard).values(heartbeat_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
            return result.rowcount == 1

    def _alert(self, run_id: str) -> None:
        """Evaluate the alert rules on a run this scheduler failed."""
        if self.monitor is None:
            return
        try:
            self.monitor.after_run_id(run_id)
        except Exception:  # alerting must not stop scheduling
            self.log.exception("run %s: alert rules could not be evaluated", run_id)

    def _run_log(self, run_id: str, message: str) -> None:
        try:
            self.runs.log(run_id, "WARNING", f"scheduler: {message}")
        except BreadthFlowError as exc:  # the run log is a courtesy, not the record
            self.log.warning("run %s: cannot write its log (%s)", run_id, exc)

    # --- due pipelines --------------------------------------------------------------------

    def _schedule_pipeline(
        self, stored: StoredPipeline, now: dt.datetime, report: TickReport
    ) -> None:
        schedule = parse_schedule(stored.schedule or "", stored.timezone)
        following = schedule.next_after(now)
        if stored.next_run_at is None:
            if self._advance(stored, following):
                self.log.info("pipeline '%s': first run due at %s", stored.name, _iso(following))
            return
        # Between our read and now another scheduler may have fired this pipeline (and a
        # user may have disabled or rescheduled it); then there is nothing left to do —
        # firing from the old view could run a slot that scheduler coalesced away.
        if not self._still_due(stored):
            return
        slot, missed = latest_slot(schedule, stored.next_run_at, now)
        run_id = self.runs.enqueue(
            stored.id,
            "schedule",
            {"scheduled_for": _iso(slot), "missed": missed},
            stored.definition(),
            scheduled_for=slot,
        )
        if run_id is None:
            self.log.debug("pipeline '%s': slot %s already queued", stored.name, _iso(slot))
        else:
            report.enqueued.append(run_id)
            report.coalesced += missed
            if missed:
                self.log.warning(
                    "pipeline '%s': %d missed slot(s) coalesced — queued run %s for the latest, %s",
                    stored.name,
                    missed,
                    run_id,
                    _iso(slot),
                )
            else:
                self.log.info(
                    "pipeline '%s': queued run %s for %s", stored.name, run_id, _iso(slot)
                )
        self._advance(stored, following)

    def _still_due(self, stored: StoredPipeline) -> bool:
        query = select(PipelineRow.next_run_at).where(
            PipelineRow.id == stored.id, PipelineRow.is_active.is_(True)
        )
        with self.db.session() as session:
            current = session.execute(query).first()
        return current is not None and current[0] == stored.next_run_at

    def _advance(self, stored: StoredPipeline, next_run_at: dt.datetime) -> bool:
        """Set ``next_run_at`` — only forward, only while the pipeline is active and its
        schedule is the one it was computed from (an edit in between wins)."""
        statement = (
            update(PipelineRow)
            .where(
                PipelineRow.id == stored.id,
                PipelineRow.is_active.is_(True),
                PipelineRow.schedule == stored.schedule,
                PipelineRow.timezone == stored.timezone,
                PipelineRow.trigger_mode == stored.trigger_mode,
                or_(PipelineRow.next_run_at.is_(None), PipelineRow.next_run_at < next_run_at),
            )
            .values(next_run_at=next_run_at)
        )
        with self.db.session() as session:
            result = session.execute(statement, execution_options={"synchronize_session": False})
            return result.rowcount == 1

    def _now(self) -> dt.datetime:
        return _utc(self.clock())


def latest_slot(
    schedule: Schedule, first: dt.datetime, now: dt.datetime
) -> tuple[dt.datetime, int]:
    """The latest slot at or before ``now`` counting from the due slot ``first``
    (``first <= now``), and how many slots it skips."""
    seconds = schedule.interval_seconds
    if seconds is not None:
        # Interval slots are epoch-aligned (see Schedule.next_after): count, don't walk.
        missed = int(now.timestamp()) // seconds - int(first.timestamp()) // seconds
        if missed <= 0:
            return first, 0
        return dt.datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, dt.UTC), missed
    slot, missed = first, 0
    for _ in range(MAX_CRON_STEPS):
        following = schedule.next_after(slot)
        if following > now:
            return slot, missed
        slot, missed = following, missed + 1
    # A long outage of a frequent cron schedule: jump to just before now, walk the rest.
    local = now.astimezone(zoneinfo.ZoneInfo(schedule.timezone))
    jumped = croniter(schedule.expression, local).get_prev(dt.datetime).astimezone(dt.UTC)
    if jumped > slot:
        slot = jumped
    while (following := schedule.next_after(slot)) <= now:
        slot, missed = following, missed + 1
    return slot, missed


# --- helpers ------------------------------------------------------------------------------


def _schedule_of(
    pipeline: PipelineDefinition | StoredPipeline | Mapping[str, Any],
) -> Schedule | None:
    if isinstance(pipeline, Mapping):
        expression = pipeline.get("schedule")
        timezone = pipeline.get("timezone") or "UTC"
        mode = pipeline.get("trigger_mode", TriggerMode.PERIODIC)
    else:
        expression, timezone, mode = pipeline.schedule, pipeline.timezone, pipeline.trigger_mode
    if not expression or mode != TriggerMode.PERIODIC:
        return None
    return parse_schedule(expression, timezone)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r} — the clock must be timezone-aware")
    return moment.astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _stopped(stop: Any) -> bool:
    is_set = getattr(stop, "is_set", None)
    return bool(is_set()) if callable(is_set) else bool(stop.requested)


def _wait(stop: Any, seconds: float) -> None:
    """Sleep ``seconds``, waking early when ``stop`` is set."""
    wait = getattr(stop, "wait", None)
    if callable(wait):
        wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while not _stopped(stop) and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
