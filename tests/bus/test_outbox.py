"""Events recorded with the change that caused them: stored signals and run state changes."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from breadthflow.bus import Event, open_bus
from breadthflow.bus.relay import Relay
from breadthflow.bus.sql import SqlBus
from breadthflow.core.config import load_settings
from breadthflow.core.errors import BackendUnavailableError, InvalidInputError
from breadthflow.pipelines.definitions import definition_from
from breadthflow.store import close_all, open_database
from breadthflow.store.db import Database
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository
from breadthflow.store.signals import SignalRepository

D1, D2 = dt.date(2024, 3, 4), dt.date(2024, 3, 5)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    close_all()
    yield open_database(db_url)
    close_all()


@pytest.fixture
def bus(db: Database) -> SqlBus:
    opened = open_bus("sqlite", load_settings(), db)
    assert isinstance(opened, SqlBus)
    return opened


def rows() -> list[dict]:
    return [
        {"symbol": "AAPL", "date": D1, "signal_type": "SELL", "confidence": 0.4},
        {"symbol": "AAPL", "date": D2, "signal_type": "BUY", "confidence": 0.85},
        {"symbol": "MSFT", "date": D2, "signal_type": "HOLD", "confidence": 0.5},
        {"symbol": "demo_small", "date": D2, "signal_type": "SELL", "confidence": 0.7},
    ]


def store(db: Database) -> tuple[int, int]:
    return SignalRepository(db).replace(
        rows(), strategy="rsi", timeframe="1d", start=D1, end=D2,
        symbols=["AAPL", "MSFT", "demo_small"], pipeline_run_id="run-1",
    )  # fmt: skip


def test_storing_signals_records_one_trading_signals_event(db: Database, bus: SqlBus) -> None:
    store(db)

    [message] = bus.consume("trading-signals", "dispatcher", "d1", 10, 0)
    data = message.event.data
    assert message.event.type == "signals.stored" and data["stored"] == 4
    assert data["strategy"] == "rsi" and data["pipeline_run_id"] == "run-1"
    assert [(t["ticker"], t["signal"], t["confidence"], t["date"]) for t in data["tickers"]] == [
        ("AAPL", "BULLISH", 85.0, "2024-03-05"),  # the latest signal of each symbol
        ("MSFT", "NEUTRAL", 50.0, "2024-03-05"),
    ]
    assert [(m["universe"], m["signal"]) for m in data["markets"]] == [("demo_small", "BEARISH")]


def test_a_finished_backtest_records_a_backtest_results_event(db: Database, bus: SqlBus) -> None:
    from breadthflow.store.backtests import BacktestRepository

    repo = BacktestRepository(db)
    run = repo.start("run", "sma_cross", {"fast": 10}, "dow30", ["AAPL"], D1, D2, {"cash": 1e4})
    assert bus.consume("backtest-results", "g", "c1", 10, 0) == []  # nothing while running

    repo.finish(run, {"sharpe": 1.5, "n_trades": 4, "curve": [1, 2]}, artifacts="backtests/1")

    [message] = bus.consume("backtest-results", "g", "c1", 10, 0)
    data = message.event.data
    assert message.event.type == "backtest.run.succeeded"
    assert (data["backtest_id"], data["strategy"], data["universe"]) == (run, "sma_cross", "dow30")
    assert data["stats"] == {"sharpe": 1.5, "n_trades": 4}  # scalars only; curves stay in the lake
    assert data["artifacts"] == "backtests/1"


def test_a_fetch_that_stored_bars_records_a_market_data_event(db: Database, bus: SqlBus) -> None:
    from breadthflow.core.models import FetchReport, SymbolFailure, Timeframe
    from breadthflow.store.ingestions import IngestionRepository

    repo = IngestionRepository(db)
    report = FetchReport(provider="sample", timeframe=Timeframe.D1, start=D1, end=D2,
                         symbols_requested=3, symbols_stored=2, rows_received=4,
                         rows_inserted=4, first_date=D1, last_date=D2,
                         failures=[SymbolFailure(symbol="ZZZ", error="unknown")])  # fmt: skip
    nothing_new = report.model_copy(update={"rows_inserted": 0, "rows_unchanged": 4})

    repo.finish(repo.start("sample", "1d", D1, D2, 3), nothing_new)
    first = repo.start("sample", "1d", D1, D2, 3)
    repo.finish(first, report)

    [message] = bus.consume("market-data", "g", "c1", 10, 0)  # only the fetch with new bars
    data = message.event.data
    assert message.event.type == "bars.ingested" and data["ingestion_id"] == first
    assert (data["symbols_stored"], data["rows_inserted"], data["timeframe"]) == (2, 4, "1d")
    assert data["failed_symbols"] == ["ZZZ"] and data["last_date"] == D2.isoformat()


def test_signals_and_their_event_commit_together(
    db: Database, bus: SqlBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("disk full while writing the event")

    monkeypatch.setattr("breadthflow.store.signals.record_events", broken)
    with pytest.raises(RuntimeError):
        store(db)

    assert SignalRepository(db).count() == 0  # the signals rolled back with the event
    assert bus.lag("trading-signals", "dispatcher") == 0


def test_run_state_changes_record_pipeline_events_in_order(db: Database, bus: SqlBus) -> None:
    definition = definition_from({"name": "daily", "schedule": "5m"}).model_dump(mode="json")
    pipeline = PipelineRepository(db).create(definition, None)
    runs = RunRepository(db)

    first = runs.enqueue(pipeline, "manual")
    assert runs.claim_next("w1") is not None
    runs.finish(first, "succeeded")
    second = runs.enqueue(pipeline, "signal")
    runs.cancel(second)
    assert runs.requeue(second)
    runs.mark_failed(second, "worker lost")

    got = bus.consume("pipeline-events", "audit", "a1", 100, 0)
    created, *got = got  # the definition's own event comes first
    assert (created.event.type, created.event.data["name"]) == ("pipeline.created", "daily")
    assert [(m.event.type, m.event.data["run_id"]) for m in got] == [
        ("run.queued", first),
        ("run.running", first),
        ("run.succeeded", first),
        ("run.queued", second),
        ("run.cancelled", second),
        ("run.queued", second),
        ("run.failed", second),
    ]
    assert got[-1].event.data["error"] == "worker lost" and got[-1].event.data["attempt"] == 2
    assert {m.event.data["pipeline_id"] for m in got} == {pipeline}


def test_a_slot_taken_twice_records_one_queued_event(db: Database, bus: SqlBus) -> None:
    definition = definition_from({"name": "daily", "schedule": "5m"}).model_dump(mode="json")
    pipeline = PipelineRepository(db).create(definition, None)
    slot = dt.datetime(2024, 3, 4, 16, 30, tzinfo=dt.UTC)

    assert RunRepository(db).enqueue(pipeline, "schedule", scheduled_for=slot) is not None
    assert RunRepository(db).enqueue(pipeline, "schedule", scheduled_for=slot) is None

    got = bus.consume("pipeline-events", "audit", "a1", 100, 0)
    assert [m.event.type for m in got] == ["pipeline.created", "run.queued"]


def test_publishing_an_invalid_trading_signal_is_refused(bus: SqlBus) -> None:
    bad = Event(
        type="scan", data={"tickers": [{"ticker": "AAPL", "signal": "UP", "confidence": 1}]}
    )

    with pytest.raises(InvalidInputError, match="'UP'"):
        bus.publish("trading-signals", [bad])

    assert bus.lag("trading-signals", "any") == 0


def test_the_relay_retries_an_unreachable_bus_with_backoff(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Flaky(SqlBus):
        """A bus that is down for its first two publishes."""

        embedded = False
        sent: ClassVar[list[str]] = []
        failures = 2

        def _publish_raw(self, topic, payloads):  # type: ignore[no-untyped-def]
            if Flaky.failures:
                Flaky.failures -= 1
                raise BackendUnavailableError("event bus flaky://: connection refused")
            Flaky.sent += [event_id for event_id, _ in payloads]

    with db.session() as session:
        ids = SqlBus(db).publish(
            "pipeline-events", [Event(type="a"), Event(type="b")], session=session
        )
    waits: list[float] = []
    stop = threading.Event()

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if Flaky.sent:
            stop.set()
        return stop.is_set()

    monkeypatch.setattr(stop, "wait", wait)
    Relay(db, Flaky(db)).run(stop, interval=0.5)

    assert Flaky.sent == ids
    assert waits[:2] == [0.5, 1.0]  # doubled after each failure
    assert Relay(db, Flaky(db)).drain() == 0  # marked as relayed


def test_definition_changes_record_pipeline_events(db: Database, bus: SqlBus) -> None:
    repo = PipelineRepository(db)
    definition = definition_from({"name": "sig", "trigger_mode": "signal", "schedule": None,
                                  "scanner_tickers": ["AAPL"]}).model_dump(mode="json")  # fmt: skip
    pid = repo.create(definition, None)
    repo.update("sig", {**definition, "scanner_tickers": ["MSFT"]}, None)
    repo.set_active("sig", False, None)
    repo.delete("sig")

    got = bus.consume("pipeline-events", "audit", "a1", 100, 0)
    assert [(m.event.type, m.event.data["pipeline_id"]) for m in got] == [
        ("pipeline.created", pid),
        ("pipeline.updated", pid),
        ("pipeline.disabled", pid),
        ("pipeline.deleted", pid),
    ]
