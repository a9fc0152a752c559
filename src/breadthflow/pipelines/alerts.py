"""Alert rules over a pipeline's run history, and the monitor that fires them.

Four rules (docs/pipelines.md#alerts):

- ``run_failed`` (critical): the run ended ``failed``.
- ``error_rate`` (warning): of the pipeline's latest ``error_rate_window`` finished runs
  (``cancelled`` ones left out), the share that ended ``failed`` is above
  ``error_rate_threshold``; evaluated once ``error_rate_min_runs`` runs are there.
- ``slow_run`` (warning): the run took longer than ``slow_run_factor`` × the 95th
  percentile of the durations of the pipeline's latest ``slow_run_window`` earlier
  *succeeded* runs; evaluated once ``slow_run_min_runs`` of them exist.
- ``late`` (critical): an active periodic pipeline had no run start while
  ``late_intervals`` of its schedule's slots went by (counted from its last run's start,
  or from when it was created or enabled), and none is running now.

The rule functions are pure: run records and times in, :class:`AlertCandidate` out.
:class:`AlertMonitor` reads the history, stores what fires
(:class:`~breadthflow.store.alerts.AlertRepository`: an alert is not stored again while an
identical one is open) and sends it through the pipeline's notifications — as a
``failure`` event; a good run after a failed one sends a ``recovery``.

Thresholds default to the ``alert_*`` settings; a pipeline overrides them in its
parameters under ``alerts``::

    {"alerts": {"rules": ["run_failed", "late"], "late_intervals": 3}}
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from breadthflow.core.errors import InvalidInputError
from breadthflow.pipelines.definitions import (
    Notifications,
    PipelineDefinition,
    Schedule,
    TriggerMode,
    parse_schedule,
)
from breadthflow.pipelines.notify import Event, Notifier
from breadthflow.store.alerts import AlertRepository, StoredAlert
from breadthflow.store.db import Database
from breadthflow.store.models import utcnow
from breadthflow.store.pipelines import PipelineRepository, StoredPipeline
from breadthflow.store.runs import RunRepository, RunSummary

log = logging.getLogger("breadthflow.pipelines.alerts")

RULES = ("run_failed", "error_rate", "slow_run", "late")
SEVERITY = {"run_failed": "critical", "error_rate": "warning", "slow_run": "warning",
            "late": "critical"}  # fmt: skip
#: Where a pipeline's own thresholds go in its parameters.
ALERTS_PARAMETER = "alerts"
#: Runs that count for the error rate (a cancelled run is neither a success nor an error).
COUNTED = ("succeeded", "partial", "failed")
GOOD = ("succeeded", "partial")


class AlertPolicy(BaseModel):
    """Which rules run and their thresholds (defaults: the ``alert_*`` settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[str, ...] = RULES
    error_rate_threshold: float = Field(0.5, gt=0, le=1)
    error_rate_window: int = Field(10, ge=1, le=1000)
    error_rate_min_runs: int = Field(3, ge=1, le=1000)
    slow_run_factor: float = Field(2.0, gt=0)
    slow_run_window: int = Field(20, ge=1, le=1000)
    slow_run_min_runs: int = Field(5, ge=1, le=1000)
    late_intervals: int = Field(2, ge=1, le=100)

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [rule for rule in value if rule not in RULES]
        if unknown:
            raise ValueError(f"unknown alert rule '{unknown[0]}' — known: {', '.join(RULES)}")
        return tuple(dict.fromkeys(value))

    @classmethod
    def from_settings(cls, settings: Any) -> AlertPolicy:
        """The defaults from :class:`~breadthflow.core.config.Settings`."""
        return cls(
            rules=tuple(settings.alert_rules),
            error_rate_threshold=settings.alert_error_rate_threshold,
            error_rate_window=settings.alert_error_rate_window,
            error_rate_min_runs=settings.alert_error_rate_min_runs,
            slow_run_factor=settings.alert_slow_run_factor,
            slow_run_window=settings.alert_slow_run_window,
            slow_run_min_runs=settings.alert_slow_run_min_runs,
            late_intervals=settings.alert_late_intervals,
        )

    def for_pipeline(self, parameters: Mapping[str, Any]) -> AlertPolicy:
        """These defaults with a pipeline's ``alerts`` parameter laid over them."""
        overrides = parameters.get(ALERTS_PARAMETER)
        if overrides is None:
            return self
        if not isinstance(overrides, Mapping):
            raise InvalidInputError(
                f"invalid pipeline parameter alerts={overrides!r} — expected an object such "
                'as {"late_intervals": 3, "rules": ["run_failed", "late"]}'
            )
        try:
            return AlertPolicy.model_validate({**self.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = str(first["msg"]).removeprefix("Value error, ")
            raise InvalidInputError(
                f"invalid pipeline parameter alerts.{where}={first.get('input')!r}: {reason}"
            ) from None


class AlertCandidate(BaseModel):
    """A rule that fires: what would be stored and sent."""

    model_config = ConfigDict(frozen=True)

    rule: str
    severity: str
    message: str
    run_id: str | None = None
    #: Start of the episode: an open alert of the same rule created since then is the
    #: same alert (None: any open alert of the rule is).
    since: dt.datetime | None = None


# --- the rules (pure) -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks —
    Hyndman & Fan type 7, numpy's default.

    >>> percentile([1, 2, 3, 4, 5], 95)
    4.8
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0–100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_failed(run: RunSummary, last_good: RunSummary | None) -> AlertCandidate | None:
    """``run_failed``: the run ended ``failed``. One alert per failure streak: the episode
    starts when the last good run (``last_good``) ended."""
    if run.status != "failed":
        return None
    reason = run.error or "no error recorded"
    return AlertCandidate(
        rule="run_failed",
        severity=SEVERITY["run_failed"],
        message=f"run {run.run_id} failed (attempt {run.attempt}): {reason}",
        run_id=run.run_id,
        since=last_good.end_time if last_good is not None else None,
    )


def error_rate(recent: Sequence[RunSummary], policy: AlertPolicy) -> AlertCandidate | None:
    """``error_rate``: ``recent`` are the pipeline's latest finished runs, newest first."""
    window = [run for run in recent if run.status in COUNTED][: policy.error_rate_window]
    if not window or len(window) < min(policy.error_rate_min_runs, policy.error_rate_window):
        return None
    failed = sum(run.status == "failed" for run in window)
    rate = failed / len(window)
    if rate <= policy.error_rate_threshold:
        return None
    return AlertCandidate(
        rule="error_rate",
        severity=SEVERITY["error_rate"],
        message=(
            f"{failed} of the last {len(window)} runs failed ({rate:.0%}, above "
            f"{policy.error_rate_threshold:.0%})"
        ),
        run_id=window[0].run_id,
    )


def slow_run(
    run: RunSummary, earlier_succeeded: Sequence[RunSummary], policy: AlertPolicy
) -> AlertCandidate | None:
    """``slow_run``: ``earlier_succeeded`` are the pipeline's succeeded runs before this
    one, newest first."""
    if run.duration is None or run.status == "cancelled":
        return None
    durations = [
        r.duration for r in earlier_succeeded[: policy.slow_run_window] if r.duration is not None
    ]
    if len(durations) < policy.slow_run_min_runs:
        return None
    p95 = percentile(durations, 95)
    limit = p95 * policy.slow_run_factor
    if run.duration <= limit:
        return None
    return AlertCandidate(
        rule="slow_run",
        severity=SEVERITY["slow_run"],
        message=(
            f"run {run.run_id} took {run.duration:.1f}s, above {limit:.1f}s "
            f"(p95 {p95:.1f}s of the last {len(durations)} successful runs × "
            f"{policy.slow_run_factor:g})"
        ),
        run_id=run.run_id,
    )


def late_deadline(schedule: Schedule, last_activity: dt.datetime, intervals: int) -> dt.datetime:
    """The ``intervals``-th slot of ``schedule`` after ``last_activity``: with no run
    started by then, the pipeline is late."""
    slot = last_activity
    for _ in range(intervals):
        slot = schedule.next_after(slot)
    return slot


def late(
    schedule: Schedule,
    last_activity: dt.datetime,
    now: dt.datetime,
    policy: AlertPolicy,
    *,
    running: bool = False,
) -> AlertCandidate | None:
    """``late``: no run started since ``last_activity`` (the last run's start, or when
    the pipeline was created or enabled) while ``late_intervals`` slots went by."""
    if running:
        return None
    deadline = late_deadline(schedule, last_activity, policy.late_intervals)
    if now <= deadline:
        return None
    return AlertCandidate(
        rule="late",
        severity=SEVERITY["late"],
        message=(
            f"no run since {last_activity:%Y-%m-%d %H:%M:%S} UTC — {policy.late_intervals} "
            f"slots of schedule '{schedule.expression}' passed (due by "
            f"{deadline:%Y-%m-%d %H:%M:%S} UTC); is the runner up?"
        ),
        since=last_activity,
    )


# --- the monitor (reads history, stores, notifies) ---------------------------------------------


class MonitorReport(BaseModel):
    """What one evaluation fired and sent."""

    alerts: list[StoredAlert] = []
    notification: Event | None = None
    channels: list[str] = []


NotifierFactory = Callable[[Notifications], Notifier]


class AlertMonitor:
    """Evaluate the rules, store new alerts and send them.

    >>> monitor = AlertMonitor(db, AlertPolicy(), lambda n: Notifier(n))   # doctest: +SKIP
    >>> monitor.after_run(definition, run_summary).alerts                   # doctest: +SKIP
    """

    def __init__(
        self,
        db: Database,
        defaults: AlertPolicy | None = None,
        notifier_for: NotifierFactory | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.defaults = defaults or AlertPolicy()
        self.notifier_for = notifier_for or Notifier
        self.clock = clock
        self.runs = RunRepository(db)
        self.alerts = AlertRepository(db)

    def after_run(
        self,
        definition: PipelineDefinition,
        run: RunSummary,
        notifier: Notifier | None = None,
    ) -> MonitorReport:
        """Rules that look at a finished run; then the failure or recovery notification."""
        try:
            policy = self.defaults.for_pipeline(definition.parameters)
        except InvalidInputError as exc:  # stored before the check existed: alert anyway
            log.warning("pipeline '%s': %s — default alert thresholds used", definition.name, exc)
            policy = self.defaults
        notifier = notifier or self.notifier_for(definition.notifications)
        candidates: list[AlertCandidate] = []
        if "run_failed" in policy.rules and run.status == "failed":
            last_good = self._last_good(run)
            found = run_failed(run, last_good)
            if found is not None:
                candidates.append(found)
        if "error_rate" in policy.rules and run.status in COUNTED:
            recent = self.runs.finished_runs(
                run.pipeline_id, COUNTED, limit=policy.error_rate_window
            )
            if found := error_rate(recent, policy):
                candidates.append(found)
        if "slow_run" in policy.rules and run.status != "cancelled":
            earlier = self.runs.finished_runs(
                run.pipeline_id, ("succeeded",), limit=policy.slow_run_window, exclude=run.run_id
            )
            if found := slow_run(run, earlier, policy):
                candidates.append(found)
        fired = self._store(run.pipeline_id, candidates)
        report = MonitorReport(alerts=fired)
        if fired:
            if notifier.wants("failure"):
                report.notification = "failure"
                report.channels = _send(notifier, definition.name, fired, run)
        elif run.status in GOOD and notifier.wants("recovery"):
            previous = self.runs.finished_runs(run.pipeline_id, COUNTED, 1, exclude=run.run_id)
            if previous and previous[0].status == "failed":
                report.notification = "recovery"
                report.channels = _send_recovery(notifier, definition.name, run)
        return report

    def after_run_id(self, run_id: str) -> MonitorReport:
        """:meth:`after_run` for a run finished outside its lifecycle — failed by the
        scheduler (its worker died on the last attempt) or before it could start."""
        run = self.runs.get(run_id)
        stored = PipelineRepository(self.db).get_by_id(run.pipeline_id)
        definition = None
        # A definition that no longer validates still alerts, with default thresholds.
        for values in (
            stored.definition(),
            {"name": stored.name, "notifications": stored.notifications},
            {"name": stored.name},
        ):
            try:
                definition = PipelineDefinition.model_validate(values)
                break
            except ValidationError:
                continue
        assert definition is not None
        return self.after_run(definition, run)

    def check_late(
        self, now: dt.datetime | None = None, pipelines: Iterable[StoredPipeline] | None = None
    ) -> list[StoredAlert]:
        """The ``late`` rule over every active periodic pipeline (the scheduler calls it
        each tick); returns the alerts it stored."""
        now = now or self.clock()
        chosen = list(pipelines) if pipelines is not None else PipelineRepository(self.db).list()
        activity = self.runs.activity()
        fired: list[StoredAlert] = []
        for stored in chosen:
            if not stored.is_active or stored.trigger_mode != TriggerMode.PERIODIC:
                continue
            if not stored.schedule:
                continue
            try:
                policy = self.defaults.for_pipeline(stored.parameters)
                if "late" not in policy.rules:
                    continue
                schedule = parse_schedule(stored.schedule, stored.timezone)
            except InvalidInputError as exc:
                log.debug("pipeline '%s': late rule skipped (%s)", stored.name, exc)
                continue
            started, running = activity.get(stored.id, (None, False))
            last_activity = max(t for t in (started, stored.updated_at) if t is not None)
            candidate = late(schedule, last_activity, now, policy, running=running)
            if candidate is None:
                continue
            new = self._store(stored.id, [candidate])
            if new:
                fired.extend(new)
                notifier = self.notifier_for(Notifications.model_validate(stored.notifications))
                _send(notifier, stored.name, new, None)
        return fired

    # --- internals --------------------------------------------------------------------------

    def _last_good(self, run: RunSummary) -> RunSummary | None:
        found = self.runs.finished_runs(run.pipeline_id, GOOD, limit=1, exclude=run.run_id)
        return found[0] if found else None

    def _store(self, pipeline_id: int, candidates: list[AlertCandidate]) -> list[StoredAlert]:
        fired = []
        for candidate in candidates:
            stored = self.alerts.fire(
                pipeline_id,
                candidate.rule,
                candidate.severity,
                candidate.message,
                run_id=candidate.run_id,
                since=candidate.since,
            )
            if stored is not None:
                log.warning("alert %s (%s): %s", stored.id, stored.rule, stored.message)
                fired.append(stored)
        return fired


def _send(
    notifier: Notifier, pipeline: str, alerts: list[StoredAlert], run: RunSummary | None
) -> list[str]:
    """One notification for the alerts one evaluation fired (a failed run often trips
    ``run_failed`` and ``error_rate`` together)."""
    if not notifier.wants("failure"):
        return []
    first = alerts[0]
    if first.rule == "run_failed" and run is not None:
        subject = f"[breadthflow] pipeline {pipeline} failed ({run.run_id})"
    else:
        subject = f"[breadthflow] pipeline {pipeline}: {first.rule.replace('_', ' ')}"
    lines = [f"pipeline: {pipeline}"]
    lines += [f"alert {a.id} [{a.severity}] {a.rule}: {a.message}" for a in alerts]
    if run is not None:
        lines += _run_lines(run)
    lines.append("acknowledge: breadthflow alerts ack " + " ".join(str(a.id) for a in alerts))
    data: dict[str, Any] = {
        "pipeline": pipeline,
        "alerts": [a.model_dump(mode="json") for a in alerts],
    }
    if run is not None:
        data |= _run_data(run)
    try:
        return notifier.send("failure", subject, "\n".join(lines) + "\n", data)
    except Exception as error:  # a notification never breaks what it reports on
        log.warning("alert notification for pipeline %s failed: %s", pipeline, error)
        return []


def _send_recovery(notifier: Notifier, pipeline: str, run: RunSummary) -> list[str]:
    subject = f"[breadthflow] pipeline {pipeline} recovered ({run.run_id})"
    body = "\n".join([f"pipeline: {pipeline}", *_run_lines(run)]) + "\n"
    try:
        return notifier.send("recovery", subject, body, {"pipeline": pipeline} | _run_data(run))
    except Exception as error:
        log.warning("recovery notification for pipeline %s failed: %s", pipeline, error)
        return []


def _run_lines(run: RunSummary) -> list[str]:
    duration = f"{run.duration:.1f}s" if run.duration is not None else "-"
    lines = [
        f"run: {run.run_id} (attempt {run.attempt}, trigger {run.trigger})",
        f"status: {run.status}",
        f"duration: {duration}",
        f"symbols processed: {run.symbols_processed}, errors: {run.error_count}",
    ]
    if run.error:
        lines.append(f"error: {run.error}")
    return lines


def _run_data(run: RunSummary) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status,
        "error": run.error,
        "duration": run.duration,
        "symbols_processed": run.symbols_processed,
        "error_count": run.error_count,
    }
