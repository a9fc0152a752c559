"""Alert rules (pure), their storage (SQLite and PostgreSQL) and their delivery to a real
webhook and a real SMTP server on loopback."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from breadthflow.core.config import Settings
from breadthflow.core.errors import InvalidInputError
from breadthflow.pipelines.alerts import (
    AlertMonitor,
    AlertPolicy,
    error_rate,
    late,
    late_deadline,
    percentile,
    run_failed,
    slow_run,
)
from breadthflow.pipelines.definitions import definition_from, parse_schedule
from breadthflow.pipelines.lifecycle import PipelineLifecycle
from breadthflow.pipelines.notify import Notifier
from breadthflow.pipelines.scheduler import Scheduler
from breadthflow.store import close_all
from breadthflow.store.alerts import AlertRepository
from breadthflow.store.db import Database, open_database
from breadthflow.store.models import PipelineRunRow, utcnow
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository, RunSummary
from tests.pipelines._servers import SmtpSink, Webhook

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def summary(
    status: str = "succeeded",
    duration: float | None = 10.0,
    end: dt.datetime = T0,
    run_id: str = "run-x",
) -> RunSummary:
    return RunSummary(
        run_id=run_id, pipeline_id=1, pipeline_name="daily", trigger="schedule",
        trigger_payload={}, status=status, scheduled_for=None, queued_at=end,
        start_time=end, end_time=end, duration=duration, symbols_processed=1,
        signals_generated=0, error_count=0, backtest_results=None, attempt=1, worker="w",
        heartbeat_at=end, config_snapshot={}, error="boom" if status == "failed" else None,
        cpu_seconds=1.0, peak_memory_mb=100.0,
    )  # fmt: skip


def history(statuses: str) -> list[RunSummary]:
    """Newest first: 'FSS' = failed, succeeded, succeeded."""
    names = {"S": "succeeded", "F": "failed", "P": "partial", "C": "cancelled"}
    return [summary(names[c], run_id=f"run-{i}") for i, c in enumerate(statuses)]


# --- the rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 99, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 20])
def test_percentile_matches_numpy_linear(q: float, n: int) -> None:
    values = list(np.random.default_rng(n).gamma(2.0, 30.0, size=n))
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_run_failed_fires_for_a_failed_run_only() -> None:
    last_good = summary("succeeded", end=T0 - dt.timedelta(hours=1))
    fired = run_failed(summary("failed"), last_good)
    assert fired is not None and fired.rule == "run_failed" and fired.severity == "critical"
    assert "run-x failed (attempt 1): boom" in fired.message
    assert fired.since == last_good.end_time  # one alert per failure streak
    assert run_failed(summary("partial"), last_good) is None
    assert run_failed(summary("succeeded"), last_good) is None


def test_error_rate_fires_above_the_threshold() -> None:
    policy = AlertPolicy(error_rate_threshold=0.5, error_rate_window=4, error_rate_min_runs=3)
    fired = error_rate(history("FFFSSSSS"), policy)  # window = FFFS: 75 %
    assert fired is not None and "3 of the last 4 runs failed (75%, above 50%)" in fired.message
    assert error_rate(history("FFSSFFFF"), policy) is None  # 2 of 4 is not above 50 %
    # cancelled runs are neither: FCFCFS → window F F F S
    assert error_rate(history("FCFCFS"), policy) is not None


def test_error_rate_waits_for_enough_runs() -> None:
    policy = AlertPolicy(error_rate_threshold=0.5, error_rate_window=10, error_rate_min_runs=3)
    assert error_rate(history("FF"), policy) is None
    assert error_rate(history("FFS"), policy) is not None


def test_slow_run_fires_above_p95_times_k() -> None:
    policy = AlertPolicy(slow_run_factor=2.0, slow_run_min_runs=5, slow_run_window=20)
    earlier = [summary(duration=d) for d in (10, 11, 12, 13, 30)]
    limit = 2.0 * np.percentile([10, 11, 12, 13, 30], 95)  # 2 × 26.6 = 53.2
    fired = slow_run(summary(duration=limit + 0.01), earlier, policy)
    assert fired is not None and fired.severity == "warning"
    assert "above 53.2s (p95 26.6s of the last 5 successful runs × 2)" in fired.message
    assert slow_run(summary(duration=limit), earlier, policy) is None
    assert slow_run(summary(duration=limit * 3), earlier[:4], policy) is None  # too few runs
    assert slow_run(summary("cancelled", duration=limit * 3), earlier, policy) is None


def test_slow_run_only_looks_at_the_window() -> None:
    policy = AlertPolicy(slow_run_factor=1.5, slow_run_min_runs=3, slow_run_window=3)
    earlier = [summary(duration=d) for d in (10, 10, 10, 1000)]  # 1000 is out of the window
    assert slow_run(summary(duration=16), earlier, policy) is not None


def test_late_fires_after_n_interval_slots_without_a_run() -> None:
    schedule = parse_schedule("5m")
    policy = AlertPolicy(late_intervals=2)
    last = dt.datetime(2024, 3, 1, 12, 0, 3, tzinfo=dt.UTC)  # the 12:00 run started
    assert late_deadline(schedule, last, 2) == dt.datetime(2024, 3, 1, 12, 10, tzinfo=dt.UTC)
    assert late(schedule, last, last + dt.timedelta(minutes=9, seconds=57), policy) is None
    fired = late(schedule, last, last + dt.timedelta(minutes=10), policy)
    assert fired is not None and fired.rule == "late" and fired.since == last
    assert late(schedule, last, last + dt.timedelta(hours=1), policy, running=True) is None


def test_late_counts_cron_slots_so_weekends_do_not_count() -> None:
    weekdays = parse_schedule("30 16 * * mon-fri", "America/New_York")
    policy = AlertPolicy(late_intervals=2)
    friday = dt.datetime(2024, 3, 1, 21, 30, 5, tzinfo=dt.UTC)  # 16:30:05 New York
    tuesday_slot = dt.datetime(2024, 3, 5, 21, 30, tzinfo=dt.UTC)
    assert late_deadline(weekdays, friday, 2) == tuesday_slot
    assert late(weekdays, friday, tuesday_slot - dt.timedelta(minutes=1), policy) is None
    assert late(weekdays, friday, tuesday_slot + dt.timedelta(seconds=1), policy) is not None


def test_a_pipeline_overrides_the_defaults_and_bad_values_are_one_line() -> None:
    defaults = AlertPolicy.from_settings(Settings(alert_late_intervals=4))
    assert defaults.late_intervals == 4
    mine = defaults.for_pipeline({"alerts": {"rules": ["late"], "slow_run_factor": 3}})
    assert mine.rules == ("late",) and mine.slow_run_factor == 3 and mine.late_intervals == 4
    with pytest.raises(InvalidInputError, match=r"alerts.error_rate_threshold=2"):
        defaults.for_pipeline({"alerts": {"error_rate_threshold": 2}})
    with pytest.raises(InvalidInputError, match=r"unknown alert rule 'slow'"):
        defaults.for_pipeline({"alerts": {"rules": ["slow"]}})
    with pytest.raises(InvalidInputError, match=r"expected an object"):
        defaults.for_pipeline({"alerts": 3})


# --- storage ------------------------------------------------------------------------------


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    close_all()
    yield open_database(db_url)
    close_all()


def make_pipeline(db: Database, name: str = "daily", **values: Any) -> int:
    definition = definition_from({"name": name, **values})
    return PipelineRepository(db).create(definition.model_dump(mode="json"), None)


def test_an_open_alert_is_not_fired_again_until_acknowledged(db: Database) -> None:
    alerts = AlertRepository(db)
    pid = make_pipeline(db)

    first = alerts.fire(pid, "error_rate", "warning", "3 of 4 failed")
    assert first is not None and first.pipeline == "daily" and not first.acknowledged
    assert alerts.fire(pid, "error_rate", "warning", "4 of 4 failed") is None
    slow = alerts.fire(pid, "slow_run", "warning", "slow")  # another rule
    assert slow is not None

    acked, was_open = alerts.acknowledge(first.id)
    assert was_open and acked.acknowledged_at is not None
    assert alerts.acknowledge(first.id)[1] is False
    again = alerts.fire(pid, "error_rate", "warning", "4 of 4 failed")
    assert again is not None and again.id != first.id

    assert [a.id for a in alerts.list(pid)] == [again.id, slow.id]  # open, newest first
    assert len(alerts.list(pid, include_acknowledged=True)) == 3
    assert alerts.acknowledge_all(pid) == 2 and alerts.list(pid) == []


def test_a_new_episode_fires_even_while_the_old_alert_is_open(db: Database) -> None:
    alerts = AlertRepository(db)
    pid = make_pipeline(db)
    old = alerts.fire(pid, "run_failed", "critical", "run-1 failed")
    assert old is not None
    assert alerts.fire(pid, "run_failed", "critical", "run-2 failed", since=old.created_at) is None
    recovered = utcnow()  # a good run ended after the old alert: a new streak
    assert alerts.fire(pid, "run_failed", "critical", "run-3 failed", since=recovered)


# --- the monitor over real run records ------------------------------------------------------


def record(runs: RunRepository, pid: int, status: str, duration: float) -> RunSummary:
    run_id = runs.enqueue(pid, "schedule")
    runs.start(run_id, "w")
    runs.finish(run_id, status, error="boom" if status == "failed" else None)
    with runs.db.session() as session:  # a chosen duration, in time order
        session.execute(
            update(PipelineRunRow).where(PipelineRunRow.run_id == run_id).values(duration=duration)
        )
    return runs.get(run_id)


class Recorder(Notifier):
    """A notifier that keeps what it would send (delivery itself is tested below)."""

    def __init__(self, notifications: Any) -> None:
        super().__init__(notifications)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def wants(self, event: str) -> bool:
        return True

    def send(self, event: Any, subject: str, body: str, data: Any = None) -> list[str]:
        self.sent.append((event, subject, dict(data or {})))
        return ["recorder"]


def test_the_monitor_fires_each_rule_once_from_the_history(db: Database) -> None:
    pid = make_pipeline(db, parameters={"alerts": {"slow_run_min_runs": 3}})
    definition = definition_from(
        {"name": "daily", "parameters": {"alerts": {"slow_run_min_runs": 3}}}
    )
    runs = RunRepository(db)
    monitor = AlertMonitor(db, AlertPolicy(error_rate_window=4, error_rate_min_runs=3))
    notifier = Recorder(definition.notifications)

    for duration in (10.0, 11.0, 12.0):
        report = monitor.after_run(definition, record(runs, pid, "succeeded", duration), notifier)
        assert report.alerts == [] and report.notification is None
    slow = monitor.after_run(definition, record(runs, pid, "succeeded", 40.0), notifier)
    assert [a.rule for a in slow.alerts] == ["slow_run"] and slow.notification == "failure"

    failed = monitor.after_run(definition, record(runs, pid, "failed", 5.0), notifier)
    assert [a.rule for a in failed.alerts] == ["run_failed"]  # 1 of 4: no error_rate
    failed = monitor.after_run(definition, record(runs, pid, "failed", 5.0), notifier)
    assert failed.alerts == []  # 2 of 4 is not above 50 %, and the streak's alert is open
    failed = monitor.after_run(definition, record(runs, pid, "failed", 5.0), notifier)
    assert [a.rule for a in failed.alerts] == ["error_rate"]  # 3 of 4
    recovered = monitor.after_run(definition, record(runs, pid, "succeeded", 11.0), notifier)
    assert recovered.alerts == [] and recovered.notification == "recovery"

    assert [event for event, _, _ in notifier.sent] == [
        "failure", "failure", "failure", "recovery",
    ]  # fmt: skip
    assert notifier.sent[1][1].startswith("[breadthflow] pipeline daily failed (run-")
    assert notifier.sent[2][1] == "[breadthflow] pipeline daily: error rate"
    stored = AlertRepository(db).list(pid)
    assert sorted(a.rule for a in stored) == ["error_rate", "run_failed", "slow_run"]


def test_the_scheduler_fires_late_once_per_episode(db: Database) -> None:
    pid = make_pipeline(db, schedule="1m")
    runs = RunRepository(db)
    now = [utcnow()]
    scheduler = Scheduler(db, clock=lambda: now[0], monitor=AlertMonitor(db, AlertPolicy()))

    assert scheduler.tick().alerts == []  # just created: not late
    now[0] += dt.timedelta(minutes=3)
    first = scheduler.tick().alerts
    assert len(first) == 1
    assert scheduler.tick().alerts == []  # still the same episode
    (alert,) = AlertRepository(db).list(pid)
    assert alert.rule == "late" and "is the runner up?" in alert.message

    queued = [r for r in runs.list(pid) if r.status == "queued"]
    runs.start(queued[0].run_id, "w")  # a run starts
    now[0] = utcnow()
    assert scheduler.tick().alerts == []  # running: not late
    runs.finish(queued[0].run_id, "succeeded")
    now[0] = utcnow() + dt.timedelta(minutes=3)
    assert len(scheduler.tick().alerts) == 1  # a new episode, though the old one is open


def test_a_run_failed_by_the_scheduler_for_a_dead_worker_raises_an_alert(db: Database) -> None:
    pid = make_pipeline(db, schedule="1h")
    runs = RunRepository(db)
    run_id = runs.enqueue(pid, "schedule")
    runs.start(run_id, "elsewhere:4242/1")
    with db.session() as session:  # its worker stopped beating ten minutes ago
        session.execute(
            update(PipelineRunRow)
            .where(PipelineRunRow.run_id == run_id)
            .values(heartbeat_at=utcnow() - dt.timedelta(minutes=10))
        )
    monitor = AlertMonitor(db, AlertPolicy(rules=("run_failed",)))
    scheduler = Scheduler(db, max_attempts=1, monitor=monitor)

    assert scheduler.tick().failed == [run_id]
    (alert,) = AlertRepository(db).list(pid)
    assert alert.rule == "run_failed" and alert.run_id == run_id
    assert "worker died (no heartbeat since" in alert.message


# --- delivery to real servers -------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


class Broken(PipelineLifecycle):
    def execute(self) -> None:
        with self.step("work"):
            raise RuntimeError("feed down")


def test_alerts_reach_a_real_webhook_and_smtp_server_with_the_configured_relay(
    webhook: Webhook, smtp: SmtpSink, tmp_path: Path
) -> None:
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="alerts@desk.example",
        smtp_username="bot", smtp_password="s3cret", notify_timeout=5,
    )  # fmt: skip
    close_all()
    db = open_database(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        notifications = {"webhook_url": webhook.url, "email_to": ["ops@desk.example"]}
        values = {"name": "daily", "schedule": "1m", "notifications": notifications}
        pid = make_pipeline(db, **{k: v for k, v in values.items() if k != "name"})
        definition = definition_from(values)
        monitor = AlertMonitor(
            db, AlertPolicy.from_settings(settings), lambda n: Notifier.from_settings(n, settings)
        )
        runs = RunRepository(db)
        run_id = runs.enqueue(pid, "manual")
        notifier = Notifier.from_settings(definition.notifications, settings)
        outcome = Broken(runs, run_id, definition, notifier=notifier, monitor=monitor).run()
        late_alerts = monitor.check_late(utcnow() + dt.timedelta(minutes=5))
    finally:
        close_all()

    assert outcome.status == "failed" and outcome.notification == "failure"
    assert outcome.channels == ["webhook", "email"]
    assert len(late_alerts) == 1
    assert [body["alerts"][0]["rule"] for body in webhook.received] == ["run_failed", "late"]
    first = webhook.received[0]
    assert first["event"] == "failure" and first["run_id"] == run_id
    assert first["alerts"][0]["message"].endswith("failed (attempt 1): RuntimeError: feed down")
    assert smtp.logins == [("bot", "s3cret"), ("bot", "s3cret")]
    assert smtp.envelopes == [("alerts@desk.example", ["ops@desk.example"])] * 2
    assert smtp.messages[1]["Subject"] == "[breadthflow] pipeline daily: late"
    assert "breadthflow alerts ack" in smtp.messages[1].get_payload()
