"""The dispatcher survives its bus going away: a private Redis server is killed and
restarted under it; nothing acknowledged is read again, nothing is lost, no run is
queued twice."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from breadthflow.bus import Event, open_bus
from breadthflow.core.config import Settings
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.runs import RunRepository
from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig
from tests.conftest import free_port, missing_service

pytestmark = pytest.mark.slow


class RedisServer:
    """A throw-away redis-server with an append-only file, so a restart keeps the
    streams, their consumer groups and pending entries (as a production server would)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            missing_service("redis-server not installed")
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def _signal(ticker: str) -> Event:
    return Event(
        type="signals.test",
        data={"tickers": [{"ticker": ticker, "signal": "BULLISH", "confidence": 70}]},
    )


def test_the_dispatcher_rides_out_a_bus_outage(redis_server: RedisServer, tmp_path: Path) -> None:
    close_all()
    settings = Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'm.db'}")
    ctx = AppContext(settings)
    tickers = [f"T{i}" for i in range(10)]
    for i, ticker in enumerate(tickers):
        definition = {"name": f"p{i}", "trigger_mode": "signal", "schedule": None,
                      "scanner_tickers": [ticker]}  # fmt: skip
        pipelines_svc.create_pipeline(ctx, definition)
    url = f"redis://127.0.0.1:{redis_server.port}/0?visibility_timeout=2"
    producer = open_bus(url, settings)
    bus = open_bus(url, settings)
    config = DispatcherConfig(batch_size=5, batch_timeout=0.05, poll_timeout=0.2, busy_ttl=0)
    dispatcher = Dispatcher(bus, ctx.db, config, consumer="d1")
    stop = threading.Event()
    worker = threading.Thread(target=dispatcher.run_forever, args=(stop,))
    runs = RunRepository(ctx.db)

    def queued() -> list[str]:
        return sorted(r.trigger_payload["ticker"] for r in runs.list(limit=100))

    def wait_for(condition, what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    try:
        producer.publish("trading-signals", [_signal(t) for t in tickers[:5]])
        worker.start()
        wait_for(lambda: len(queued()) == 5, "the first five runs")

        redis_server.kill()  # the bus goes away under the running dispatcher
        wait_for(lambda: dispatcher.metrics.bus_errors >= 1, "the dispatcher to notice")
        assert worker.is_alive(), "the dispatcher died with its bus"

        redis_server.start()  # same port, same append-only file
        producer.publish("trading-signals", [_signal(t) for t in tickers[5:]])
        # The first five again too: their pipelines are busy, so nothing is queued twice.
        producer.publish("trading-signals", [_signal(t) for t in tickers[:5]])
        wait_for(lambda: len(queued()) == 10, "the runs after the restart")
        wait_for(lambda: dispatcher.metrics.received >= 15, "every signal to be received")
    finally:
        stop.set()
        worker.join(timeout=30)
        producer.close()
        bus.close()
        close_all()
    assert queued() == sorted(tickers)  # each pipeline once: nothing lost, nothing doubled
    assert dispatcher.metrics.enqueued == 10
