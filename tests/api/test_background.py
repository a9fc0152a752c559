"""The scheduler and workers that ``breadthflow serve`` runs in its own process."""

from __future__ import annotations

import time

import pytest

from breadthflow.api.background import Background
from breadthflow.core.errors import BreadthFlowError
from breadthflow.pipelines.runner import runner_state
from breadthflow.services.context import AppContext
from breadthflow.services.pipeline_control import queue_run
from breadthflow.services.pipelines import create_pipeline, list_runs

WAIT = 60.0


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_scheduler_alone_queues_due_runs(ctx: AppContext) -> None:
    create_pipeline(ctx, {"name": "tick", "schedule": "1s"})
    background = Background(ctx, scheduler=True, workers=0, poll=0.05)
    background.start()
    try:
        _until(lambda: list_runs(ctx, "tick"), "a scheduled run")
        state = background.state()
    finally:
        background.stop(timeout=30)
    assert list_runs(ctx, "tick")[-1].trigger == "schedule"
    assert state.scheduler_alive and state.workers == 0
    assert not background.state().scheduler_alive
    assert not runner_state(ctx).alive  # no runner lock or pid file without workers


def test_workers_alone_execute_queued_runs(ctx: AppContext) -> None:
    # An unknown symbol: the run ends quickly (failed or partial), but it is executed.
    create_pipeline(ctx, {"name": "once", "mode": "custom_symbols", "symbols": ["ZZZZ1"],
                          "schedule": None, "trigger_mode": "signal",
                          "retry_policy": {"max_attempts": 1}})  # fmt: skip
    run = queue_run(ctx, "once")
    background = Background(ctx, scheduler=False, workers=1, poll=0.05)
    background.start()
    try:
        _until(lambda: list_runs(ctx, "once")[0].finished, "the run to finish")
        state = background.state()
    finally:
        background.stop(timeout=60)
    finished = list_runs(ctx, "once")[0]
    assert finished.run_id == run.run_id and finished.worker is not None
    assert state.workers == 1 and state.workers_alive == 1 and not state.scheduler


def test_both_run_as_the_homes_runner_and_a_second_is_refused(ctx: AppContext) -> None:
    first = Background(ctx, scheduler=True, workers=2, poll=0.05)
    first.start()
    try:
        state = first.state()
        assert runner_state(ctx).alive
        with pytest.raises(BreadthFlowError, match="already running"):
            Background(ctx, scheduler=True, workers=1).start()
    finally:
        first.stop(timeout=30)
    assert state.scheduler_alive and state.workers_alive == 2
    assert not runner_state(ctx).alive


def test_the_dispatcher_turns_a_trading_signal_into_a_run(ctx: AppContext) -> None:
    import json

    from breadthflow.services.events import publish

    create_pipeline(ctx, {"name": "on-signal", "trigger_mode": "signal", "schedule": None,
                          "scanner_tickers": ["AAPL"]})  # fmt: skip
    background = Background(ctx, scheduler=False, workers=0, dispatcher=True)
    background.start()
    try:
        publish(ctx, "trading-signals", [json.dumps(
            {"tickers": [{"ticker": "AAPL", "signal": "BUY", "confidence": 80}]})])  # fmt: skip
        _until(lambda: list_runs(ctx, "on-signal"), "a run triggered by the signal")
        state = background.state()
    finally:
        background.stop(timeout=30)
    run = list_runs(ctx, "on-signal")[0]
    assert run.trigger == "signal" and run.status == "queued"
    assert state.dispatcher and state.dispatcher_alive
    assert not background.state().dispatcher_alive


def test_with_an_external_bus_the_outbox_is_relayed_and_signals_dispatched(
    isolated_home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis bus: a signal published to Redis triggers a run, and that run's
    ``run.queued`` event — recorded in the DB's outbox — reaches Redis through the
    in-process relay."""
    import json
    import uuid

    import redis

    from breadthflow.bus import PIPELINE_EVENTS, open_bus
    from breadthflow.core.config import get_settings, load_settings
    from breadthflow.services.events import publish
    from tests.conftest import missing_service

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()
    except Exception as exc:
        missing_service(f"Redis not reachable on 127.0.0.1:6379: {exc}")
    prefix = f"bft{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", f"redis://127.0.0.1:6379/0?prefix={prefix}")
    get_settings.cache_clear()
    ctx = AppContext(load_settings())
    create_pipeline(ctx, {"name": "on-signal", "trigger_mode": "signal", "schedule": None,
                          "scanner_tickers": ["AAPL"]})  # fmt: skip
    watcher = open_bus(ctx.settings.bus_url, ctx.settings)
    watcher.consume(PIPELINE_EVENTS, "watch", "w1", 1, timeout=0, start="earliest")
    background = Background(ctx, scheduler=False, workers=0, dispatcher=True)
    background.start()
    try:
        publish(ctx, "trading-signals", [json.dumps(
            {"tickers": [{"ticker": "AAPL", "signal": "BUY", "confidence": 80}]})])  # fmt: skip
        _until(lambda: list_runs(ctx, "on-signal"), "a run triggered by the signal")
        run_id = list_runs(ctx, "on-signal")[0].run_id
        seen: list[str] = []

        def relayed() -> bool:
            for message in watcher.consume(PIPELINE_EVENTS, "watch", "w1", 100, timeout=0.2):
                seen.append(f"{message.event.type}:{message.event.data.get('run_id')}")
            return f"run.queued:{run_id}" in seen

        _until(relayed, "the run.queued event on Redis")
    finally:
        background.stop(timeout=30)
        watcher.close()
    assert background._relay is not None and not background._relay.is_alive()
