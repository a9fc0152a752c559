"""The lifecycle's components: retry, shutdown, lock, notifications, resources, checkpoints."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from breadthflow.pipelines.checkpoints import Checkpoints
from breadthflow.pipelines.definitions import Notifications, RetryPolicy, definition_from
from breadthflow.pipelines.lifecycle import PipelineLifecycle
from breadthflow.pipelines.locks import LockHeldError, ProcessLock, pipeline_lock
from breadthflow.pipelines.notify import Notifier
from breadthflow.pipelines.resources import ResourceMeter, peak_memory_mb
from breadthflow.pipelines.retry import backoff_delays, retry_call
from breadthflow.pipelines.shutdown import GracefulShutdown, ShutdownRequested
from breadthflow.store import close_all
from breadthflow.store.db import open_database
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository
from tests.conftest import free_port
from tests.pipelines._servers import SmtpSink, Webhook

# --- retry ----------------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=1, factor=2, max_delay=10, jitter=0)
    assert list(backoff_delays(policy)) == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_backoff_jitter_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1, factor=2, max_delay=5, jitter=0.1)

    delays = list(backoff_delays(policy, random.Random(42)))

    assert delays == pytest.approx([1.02788536, 1.81000430, 3.82002345, 4.72321074])
    for delay, exact in zip(delays, [1, 2, 4, 5], strict=True):
        assert exact * 0.9 <= delay <= exact * 1.1


def test_retry_call_retries_until_it_succeeds() -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, factor=3, jitter=0)
    outcomes: list[Exception | str] = [ConnectionError("a"), ConnectionError("b"), "ok"]
    slept: list[float] = []
    retried: list[tuple[int, str, float]] = []

    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = retry_call(
        flaky,
        policy,
        sleep=slept.append,
        on_retry=lambda attempt, error, delay: retried.append((attempt, str(error), delay)),
    )

    assert result == "ok"
    assert slept == [0.5, 1.5]
    assert retried == [(1, "a", 0.5), (2, "b", 1.5)]


def test_retry_call_gives_up_with_the_last_error() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise TimeoutError(f"try {len(calls)}")

    with pytest.raises(TimeoutError, match="try 3"):
        retry_call(broken, RetryPolicy(max_attempts=3, jitter=0), sleep=lambda s: None)
    assert len(calls) == 3


def test_retry_call_does_not_retry_what_should_not_be() -> None:
    slept: list[float] = []
    with pytest.raises(ValueError, match="bad input"):
        retry_call(
            lambda: int("bad input"),
            RetryPolicy(max_attempts=5),
            should_retry=lambda error: not isinstance(error, ValueError),
            sleep=slept.append,
        )
    assert slept == []


# --- graceful shutdown ----------------------------------------------------------------------


def deliver(signum: int) -> None:
    """Send a signal to this process and give the handler a moment to run."""
    os.kill(os.getpid(), signum)
    time.sleep(0.05)


def test_sigterm_sets_the_flag_and_the_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)

    with GracefulShutdown() as shutdown:
        assert shutdown.installed and not shutdown.requested
        deliver(signal.SIGTERM)
        assert shutdown.requested and shutdown.reason == "SIGTERM received"
        with pytest.raises(ShutdownRequested, match="SIGTERM received"):
            shutdown.check()

    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_stops_at_once() -> None:
    with GracefulShutdown() as shutdown:
        deliver(signal.SIGINT)
        assert shutdown.requested
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)


def test_handlers_are_only_installed_from_the_main_thread() -> None:
    installed: list[bool] = []
    shutdown = GracefulShutdown()
    thread = threading.Thread(target=lambda: installed.append(shutdown.install()))
    thread.start()
    thread.join()

    assert installed == [False]
    shutdown.request("stop")  # the owner of the process can still set the flag
    assert shutdown.requested and shutdown.wait(5) is True


# --- process lock ---------------------------------------------------------------------------


def hold_lock(path: str) -> None:
    """A child process: take the lock and keep it until killed."""
    lock = ProcessLock(path, label="daily")
    lock.acquire()
    time.sleep(60)
    lock.release()


def test_a_second_process_cannot_take_the_lock_until_the_holder_dies(tmp_path: Path) -> None:
    lock = pipeline_lock(tmp_path, "daily")
    holder = multiprocessing.get_context("fork").Process(target=hold_lock, args=(str(lock.path),))
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while lock.holder_pid() != holder.pid:
            assert time.monotonic() < deadline, "the holder did not take the lock"
            time.sleep(0.01)

        with pytest.raises(LockHeldError) as caught:
            lock.acquire(timeout=0)
        assert str(caught.value).startswith(f"pipeline daily is already running (pid {holder.pid})")

        os.kill(holder.pid, signal.SIGKILL)  # no chance to release it itself
        holder.join(timeout=10)
    finally:
        if holder.is_alive():
            holder.kill()

    with lock.acquire(timeout=2):
        assert lock.is_locked and lock.holder_pid() == os.getpid()
    assert not lock.is_locked and lock.holder_pid() is None


# --- notifications: a real webhook receiver and a real SMTP receiver ------------------------


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


def notifier_for(webhook: Webhook, smtp: SmtpSink, on: list[str] | None = None) -> Notifier:
    settings = Notifications(
        webhook_url=webhook.url, email_to=["ops@example.com"], on=on or ["failure", "recovery"]
    )
    return Notifier(settings, smtp_host="127.0.0.1", smtp_port=smtp.port, timeout=5)


def test_a_failure_goes_to_the_webhook_and_by_email(webhook: Webhook, smtp: SmtpSink) -> None:
    notifier = notifier_for(webhook, smtp)

    sent = notifier.send("failure", "pipeline daily failed", "error: boom", {"run_id": "run-1"})

    assert sent == ["webhook", "email"]
    assert webhook.received == [
        {
            "event": "failure",
            "subject": "pipeline daily failed",
            "text": "pipeline daily failed\nerror: boom",
            "run_id": "run-1",
        }
    ]
    assert smtp.envelopes == [("breadthflow@localhost", ["ops@example.com"])]
    assert smtp.messages[0]["Subject"] == "pipeline daily failed"
    assert smtp.messages[0].get_payload().strip() == "error: boom"


def test_events_not_subscribed_are_not_sent(webhook: Webhook, smtp: SmtpSink) -> None:
    notifier = notifier_for(webhook, smtp, on=["failure"])

    assert notifier.send("recovery", "pipeline daily recovered", "") == []
    assert webhook.received == [] and smtp.messages == []


def test_undeliverable_notifications_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture, webhook: Webhook
) -> None:
    webhook.status = 500
    closed = free_port()
    settings = Notifications(webhook_url=webhook.url, email_to=["ops@example.com"])
    notifier = Notifier(settings, smtp_host="127.0.0.1", smtp_port=closed, timeout=2)

    with caplog.at_level(logging.WARNING, logger="breadthflow.pipelines"):
        assert notifier.send("failure", "subject", "body") == []

    text = caplog.text
    assert (
        f"notification webhook http://127.0.0.1:{webhook.server.server_port} failed: HTTP 500"
        in (text)
    )
    assert f"notification e-mail via 127.0.0.1:{closed} failed" in text
    assert "secret-token" not in text  # webhook URLs carry secrets


class Flaky(PipelineLifecycle):
    """Fails when told to."""

    fail = False

    def execute(self) -> None:
        with self.step("work"):
            if self.fail:
                raise RuntimeError("feed down")


def test_runs_notify_once_per_failure_streak_and_on_recovery(
    webhook: Webhook, smtp: SmtpSink, tmp_path: Path
) -> None:
    close_all()
    repo = RunRepository(open_database(f"sqlite:///{tmp_path / 'meta.db'}"))
    only_failures = {"alerts": {"rules": ["run_failed"]}}  # error_rate would join in
    definition = definition_from({"name": "daily", "parameters": only_failures})
    pipeline_id = PipelineRepository(repo.db).create(definition.model_dump(mode="json"), None)
    notifier = notifier_for(webhook, smtp)

    def run(fail: bool) -> str | None:
        run_id = repo.enqueue(pipeline_id, "manual")
        lifecycle = Flaky(repo, run_id, definition, notifier=notifier)
        lifecycle.fail = fail
        return lifecycle.run().notification

    try:
        assert run(fail=False) is None  # a first success: nothing to say
        assert run(fail=True) == "failure"
        assert run(fail=True) is None  # the same streak: its alert is still open
        assert run(fail=False) == "recovery"
        assert run(fail=False) is None  # success after success
        assert run(fail=True) == "failure"  # a new streak fires again
    finally:
        close_all()

    assert [body["event"] for body in webhook.received] == ["failure", "recovery", "failure"]
    assert webhook.received[0]["pipeline"] == "daily"
    assert webhook.received[0]["error"] == "RuntimeError: feed down"
    assert [a["rule"] for a in webhook.received[0]["alerts"]] == ["run_failed"]
    subjects = [message["Subject"] for message in smtp.messages]
    assert subjects[0].startswith("[breadthflow] pipeline daily failed (run-")
    assert subjects[1].startswith("[breadthflow] pipeline daily recovered (run-")
    assert len(subjects) == 3


# --- resources and checkpoints --------------------------------------------------------------


def test_the_meter_measures_cpu_time_and_peak_memory() -> None:
    with ResourceMeter() as meter:
        baseline = peak_memory_mb()
        block = b"\x01" * (64 << 20)  # written, so resident
        del block
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass

    assert meter.cpu_seconds >= 0.2
    assert meter.wall_seconds >= meter.cpu_seconds * 0.5
    assert baseline is not None and meter.peak_memory_mb is not None
    assert meter.peak_memory_mb >= baseline + 60


def test_checkpoints_are_read_once_and_written_through(tmp_path: Path) -> None:
    close_all()
    try:
        repo = RunRepository(open_database(f"sqlite:///{tmp_path / 'meta.db'}"))
        pipeline_id = PipelineRepository(repo.db).create(
            definition_from({"name": "daily"}).model_dump(mode="json"), None
        )
        run_id = repo.enqueue(pipeline_id, "manual")
        marks = Checkpoints(repo, run_id)

        assert not marks.done("fetch:AAPL") and marks.get("fetch:AAPL") is None
        marks.mark("fetch:AAPL", {"rows": 252})
        assert marks.done("fetch:AAPL") and marks.get("fetch:AAPL") == {"rows": 252}
        assert repo.checkpoints(run_id) == {"fetch:AAPL": {"rows": 252}}

        repo.save_checkpoint(run_id, "fetch:MSFT", {})  # written by someone else
        assert not marks.done("fetch:MSFT")
        marks.reload()
        assert marks.keys() == ["fetch:AAPL", "fetch:MSFT"]
        assert marks.clear() == 2 and not marks.done("fetch:AAPL")
    finally:
        close_all()
