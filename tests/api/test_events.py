"""``GET /api/v1/events`` against a real server (uvicorn on loopback): run state changes,
new signals, alerts and a run's log lines arrive as server-sent events."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi.testclient import TestClient

from breadthflow.api.app import create_app
from breadthflow.core.config import load_settings
from breadthflow.services.context import AppContext
from breadthflow.services.pipeline_control import queue_run
from breadthflow.services.pipelines import create_pipeline
from breadthflow.store.alerts import AlertRepository
from breadthflow.store.runs import RunRepository
from breadthflow.store.signals import SignalRepository
from tests.conftest import free_port

WAIT = 10.0


@dataclass
class Server:
    url: str
    ctx: AppContext


@pytest.fixture
def server(isolated_home) -> Iterator[Server]:
    ctx = AppContext(load_settings(api_events_poll_seconds=0.05))
    app = create_app(ctx.settings, include_web=False, ctx=ctx)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", ctx)
    finally:
        instance.should_exit = True
        thread.join(WAIT)


class Stream:
    """Reads a server-sent event stream on a thread; :meth:`next` waits for an event.

    A plain socket speaking HTTP/1.0 (no chunked encoding), so :meth:`close` can shut the
    connection down under the reading thread and the server sees the client leave.
    """

    def __init__(self, base: str, path: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.opened = threading.Event()
        host, port = base.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=WAIT)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self._sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n{extra}\r\n".encode())
        self._file = self._sock.makefile("rb")
        status = self._file.readline().decode()
        assert " 200 " in status, status
        headers = {}
        while (line := self._file.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        assert headers["content-type"].startswith("text/event-stream")
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(WAIT), "no ': connected' comment"

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            for raw in self._file:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.opened.set()
                elif line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    data += line.partition(":")[2].strip()
                elif not line and data:
                    self.events.put((kind, json.loads(data)))
                    kind, data = "message", ""
        except (OSError, ValueError):
            return

    def next(self, kind: str, match=lambda _data: True) -> dict:
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} event within {WAIT}s"
            try:
                got_kind, data = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if got_kind == kind and match(data):
                return data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(WAIT)


@pytest.fixture
def stream(server: Server) -> Iterator[Stream]:
    opened = Stream(server.url, "/api/v1/events")
    yield opened
    opened.close()


def test_a_run_state_change_is_streamed(server: Server, stream: Stream) -> None:
    create_pipeline(server.ctx, {"name": "daily"})
    run = queue_run(server.ctx, "daily")

    queued = stream.next("run", lambda d: d["run_id"] == run.run_id)
    RunRepository(server.ctx.db).start(run.run_id, "worker-x")
    running = stream.next("run", lambda d: d["run_id"] == run.run_id)
    RunRepository(server.ctx.db).finish(run.run_id, "succeeded", signals_generated=3)
    done = stream.next("run", lambda d: d["run_id"] == run.run_id)

    assert (queued["status"], running["status"], done["status"]) == (
        "queued", "running", "succeeded",
    )  # fmt: skip
    assert done["pipeline"] == "daily" and done["signals_generated"] == 3
    assert done["duration"] is not None


def test_new_signals_and_alerts_are_streamed(server: Server, stream: Stream) -> None:
    day = dt.date(2010, 1, 4)
    rows = [
        {"symbol": s, "date": day, "signal_type": t, "confidence": 0.5, "factors": {}}
        for s, t in (("AAPL", "BUY"), ("MSFT", "SELL"), ("IBM", "BUY"))
    ]
    SignalRepository(server.ctx.db).replace(
        rows, strategy="sma_cross", timeframe="1d", start=day, end=day,
        symbols=["AAPL", "MSFT", "IBM"],
    )  # fmt: skip
    signals = stream.next("signals")
    create_pipeline(server.ctx, {"name": "daily"})
    AlertRepository(server.ctx.db).fire(1, "run_failed", "critical", "run X failed")
    alert = stream.next("alert")

    assert signals["count"] == 3 and signals["by_type"] == {"BUY": 2, "SELL": 1}
    assert {s["symbol"] for s in signals["latest"]} == {"AAPL", "MSFT", "IBM"}
    assert alert["rule"] == "run_failed" and alert["message"] == "run X failed"


def test_a_runs_log_lines_are_streamed_from_the_first(server: Server) -> None:
    create_pipeline(server.ctx, {"name": "daily"})
    run = queue_run(server.ctx, "daily")
    repo = RunRepository(server.ctx.db)
    repo.log(run.run_id, "INFO", "line one")
    follow = Stream(server.url, f"/api/v1/events?run_id={run.run_id}&types=log,run")
    try:
        first = follow.next("log")
        repo.log(run.run_id, "WARNING", "line two", step="fetch")
        second = follow.next("log")
    finally:
        follow.close()
    assert (first["message"], second["message"]) == ("line one", "line two")
    assert second["level"] == "WARNING" and second["step"] == "fetch"
    assert second["id"] > first["id"]


def test_a_stream_for_an_unknown_run_or_type_is_refused(ctx: AppContext) -> None:
    with TestClient(create_app(ctx.settings, include_web=False, ctx=ctx)) as client:
        unknown_run = client.get("/api/v1/events", params={"run_id": "run-nope"})
        unknown_type = client.get("/api/v1/events", params={"types": "run,gossip"})
    assert unknown_run.status_code == 404
    assert unknown_type.status_code == 422 and "gossip" in unknown_type.json()["detail"]


def test_a_reconnecting_log_stream_continues_after_its_last_line(server: Server) -> None:
    create_pipeline(server.ctx, {"name": "daily"})
    run = queue_run(server.ctx, "daily")
    repo = RunRepository(server.ctx.db)
    first_id = repo.log(run.run_id, "INFO", "seen before the reconnect")
    repo.log(run.run_id, "INFO", "missed while away")
    again = Stream(server.url, f"/api/v1/events?run_id={run.run_id}&types=log",
                   last_event_id=f"log-{first_id}")  # fmt: skip
    try:
        line = again.next("log")
    finally:
        again.close()
    assert line["message"] == "missed while away"
