"""The trigger dispatcher against real buses: signals in, runs queued, acks after enqueue."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from breadthflow.bus import Event, EventBus, open_bus
from breadthflow.core.config import Settings
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.runs import RunRepository
from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig
from breadthflow.triggers.index import TriggerSignal
from tests.conftest import missing_service


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[AppContext, EventBus, str]]:
    """An app context (metadata DB) plus a bus of each kind, and a unique topic."""
    close_all()  # PostgreSQL drops its schema between tests: no cached engine may survive
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_url")
    else:
        db_url = f"sqlite:///{tmp_path / 'meta.db'}"
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    ctx = AppContext(settings)
    if request.param == "redis":
        import redis

        try:
            redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()
        except Exception as exc:
            missing_service(f"Redis not reachable on 127.0.0.1:6379: {exc}")
        bus = open_bus("redis://127.0.0.1:6379/0?visibility_timeout=1", settings)
    else:
        bus = open_bus("sqlite?visibility_timeout=1", settings, ctx.db)
    topic = f"trading-signals-{uuid.uuid4().hex[:8]}"
    try:
        yield ctx, bus, topic
    finally:
        bus.close()
        close_all()


def _pipeline(ctx: AppContext, name: str, tickers: list[str], **extra: object) -> int:
    values = {
        "name": name,
        "mode": "custom_symbols",
        "symbols": tickers,
        "trigger_mode": "signal",
        "schedule": None,
        "scanner_tickers": tickers,
        **extra,
    }
    return pipelines_svc.create_pipeline(ctx, values).id


def _signal(ticker: str, word: str = "BULLISH", confidence: float = 80) -> Event:
    return Event(
        type="signals.scan",
        source="test",
        data={"tickers": [{"ticker": ticker, "signal": word, "confidence": confidence}]},
    )


def _runs(ctx: AppContext) -> list[tuple[int, str, dict]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("select pipeline_id, trigger, trigger_payload from pipeline_runs")
        ).all()
    out = []
    for pid, trigger, payload in rows:
        if isinstance(payload, str):
            import json

            payload = json.loads(payload)
        out.append((pid, trigger, payload))
    return out


def _dispatcher(ctx: AppContext, bus: EventBus, topic: str, **config: object) -> Dispatcher:
    cfg = DispatcherConfig(topic=topic, batch_timeout=0.2, poll_timeout=0.5, **config)
    return Dispatcher(bus, ctx.db, cfg, consumer="d1")


def test_a_signal_queues_a_run_of_each_matching_pipeline(env) -> None:
    ctx, bus, topic = env
    apple = _pipeline(ctx, "apple", ["AAPL"])
    both = _pipeline(ctx, "both", ["AAPL", "MSFT"])
    _pipeline(ctx, "google", ["GOOG"])
    _pipeline(ctx, "clock", ["AAPL"], trigger_mode="periodic", schedule="1d")
    bus.publish(topic, [_signal("AAPL", "BUY", 85)])

    result = _dispatcher(ctx, bus, topic).run_once()

    assert result is not None
    assert sorted(result.enqueued) == sorted([apple, both])
    runs = _runs(ctx)
    assert sorted(pid for pid, _, _ in runs) == sorted([apple, both])
    for _, trigger, payload in runs:
        assert trigger == "signal"
        assert payload["ticker"] == "AAPL"
        assert payload["bias"] == "BULLISH"
        assert payload["confidence"] == 85
    assert bus.lag(topic, "dispatcher") == 0


def test_a_pipeline_already_queued_is_skipped_with_one_query_per_batch(env) -> None:
    ctx, bus, topic = env
    pid = _pipeline(ctx, "apple", ["AAPL"])
    dispatcher = _dispatcher(ctx, bus, topic, busy_ttl=0)
    bus.publish(topic, [_signal("AAPL")])
    dispatcher.run_once()
    bus.publish(topic, [_signal("AAPL", confidence=95)])

    second = dispatcher.run_once()

    assert second is not None
    assert second.enqueued == {}
    assert second.skipped == {pid}
    assert second.queries == 1
    assert len(_runs(ctx)) == 1
    assert dispatcher.metrics.snapshot()["skipped"] == 1


def test_a_pipeline_seen_busy_is_skipped_without_a_query_for_busy_ttl(env) -> None:
    ctx, bus, topic = env
    pid = _pipeline(ctx, "apple", ["AAPL"])
    now = [100.0]
    dispatcher = Dispatcher(
        bus,
        ctx.db,
        DispatcherConfig(topic=topic, batch_timeout=0.2, poll_timeout=0.5, busy_ttl=5),
        consumer="d1",
        clock=lambda: now[0],
    )
    dispatcher.refresh_index(force=True)
    assert len(dispatcher.handle_signals([TriggerSignal("AAPL", "BULLISH", 50)]).enqueued) == 1
    runs = RunRepository(ctx.db)
    claimed = runs.claim_next("w1")
    assert claimed is not None
    runs.finish(claimed.run_id, "succeeded")

    cached = dispatcher.handle_signals([TriggerSignal("AAPL", "BULLISH", 60)])
    now[0] += 5.0  # the busy mark has expired: the DB is asked again, and the run starts
    again = dispatcher.handle_signals([TriggerSignal("AAPL", "BULLISH", 70)])

    assert (cached.queries, cached.skipped, cached.enqueued) == (0, {pid}, {})
    assert again.queries == 2 and list(again.enqueued) == [pid]


def test_a_finished_run_lets_the_next_signal_trigger_again(env) -> None:
    ctx, bus, topic = env
    _pipeline(ctx, "apple", ["AAPL"])
    dispatcher = _dispatcher(ctx, bus, topic, busy_ttl=0)
    bus.publish(topic, [_signal("AAPL")])
    dispatcher.run_once()
    runs = RunRepository(ctx.db)
    claimed = runs.claim_next("w1")
    assert claimed is not None
    runs.finish(claimed.run_id, "succeeded")
    bus.publish(topic, [_signal("AAPL")])

    result = dispatcher.run_once()

    assert result is not None and len(result.enqueued) == 1
    assert len(_runs(ctx)) == 2


def test_a_batch_not_acknowledged_is_redelivered_and_queues_nothing_twice(env) -> None:
    ctx, bus, topic = env
    _pipeline(ctx, "apple", ["AAPL"])
    _pipeline(ctx, "msft", ["MSFT"])
    bus.publish(topic, [_signal("AAPL"), _signal("MSFT")])
    crashed = _dispatcher(ctx, bus, topic)
    crashed.refresh_index(force=True)
    batch = bus.consume(topic, "dispatcher", "d1", 10, timeout=1)
    crashed.handle(batch)  # runs committed, then the process "dies" before the ack
    bus.close()
    settings = ctx.settings
    if bus.url.startswith("redis"):
        reopened = open_bus("redis://127.0.0.1:6379/0?visibility_timeout=1", settings)
    else:
        reopened = open_bus("sqlite?visibility_timeout=1", settings, ctx.db)
    try:
        survivor = Dispatcher(
            reopened,
            ctx.db,
            DispatcherConfig(topic=topic, batch_timeout=0.2, poll_timeout=2.0),
            consumer="d2",
        )
        result = None
        for _ in range(5):
            result = survivor.run_once()
            if result is not None:
                break
        assert result is not None, "the un-acked batch was not redelivered"
        assert result.signals == 2
        assert result.enqueued == {}
        assert len(_runs(ctx)) == 2
        assert reopened.lag(topic, "dispatcher") == 0
    finally:
        reopened.close()


def test_two_dispatchers_in_one_group_never_double_enqueue(env) -> None:
    ctx, bus, topic = env
    tickers = [f"T{i:03d}" for i in range(40)]
    for i, ticker in enumerate(tickers):
        _pipeline(ctx, f"p{i}", [ticker])
    bus.publish(topic, [_signal(t) for t in tickers for _ in range(3)])
    config = DispatcherConfig(topic=topic, batch_size=7, batch_timeout=0.1, poll_timeout=0.3)
    first = Dispatcher(bus, ctx.db, config, consumer="a")
    second = Dispatcher(bus, ctx.db, config, consumer="b")

    def drain(d: Dispatcher) -> None:
        idle = 0
        while idle < 2:
            idle = idle + 1 if d.run_once() is None else 0

    threads = [threading.Thread(target=drain, args=(d,)) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    runs = _runs(ctx)
    assert len(runs) == 40
    assert len({pid for pid, _, _ in runs}) == 40
    # At-least-once: a slow batch may be redelivered to the other one, never lost.
    assert first.metrics.received + second.metrics.received >= 120
    assert first.metrics.enqueued + second.metrics.enqueued == 40
    assert bus.lag(topic, "dispatcher") == 0


def test_a_new_pipeline_is_seen_at_once_through_a_pipeline_event(env) -> None:
    ctx, bus, topic = env
    dispatcher = _dispatcher(ctx, bus, topic, cache_refresh=3600)
    dispatcher.run_once()  # builds an empty index
    pid = _pipeline(ctx, "late", ["AAPL"])  # records pipeline.created on pipeline-events
    if not bus.embedded:  # an external bus gets the DB's events through the relay
        from breadthflow.bus.relay import Relay

        Relay(ctx.db, bus).drain()
    bus.publish(topic, [_signal("AAPL")])

    result = dispatcher.run_once()

    assert result is not None and list(result.enqueued) == [pid]


def test_a_malformed_signal_is_dead_lettered_and_the_rest_dispatched(env) -> None:
    ctx, bus, topic = env
    pid = _pipeline(ctx, "apple", ["AAPL"])
    bus.publish_raw(topic, ['{"tickers": [{"ticker": "AAPL", "signal": "MAYBE"}]}', "not json"])
    bus.publish(topic, [_signal("AAPL")])

    result = _dispatcher(ctx, bus, topic).run_once()

    assert result is not None and list(result.enqueued) == [pid]
    letters = bus.consume(topic + ".dlq", "inspect", "i1", 10, timeout=1)
    assert len(letters) == 2
    assert all(m.event.data["reason"] for m in letters)


def test_metrics_count_received_matched_enqueued_and_by_signal(env) -> None:
    ctx, bus, topic = env
    _pipeline(ctx, "apple", ["AAPL"])
    bus.publish(topic, [_signal("AAPL", "BULLISH"), _signal("ZZZ", "BEARISH")])
    dispatcher = _dispatcher(ctx, bus, topic)

    dispatcher.run_once()

    snap = dispatcher.metrics.snapshot()
    assert (snap["received"], snap["matched"], snap["enqueued"]) == (2, 1, 1)
    assert snap["by_signal"] == {
        "BULLISH": {"received": 1, "enqueued": 1},
        "BEARISH": {"received": 1, "enqueued": 0},
    }
    assert snap["db_queries_per_batch"] == 2  # the busy check, plus the snapshot read
    assert snap["batch_latency_p50"] is not None
