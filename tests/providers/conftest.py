"""Fixtures for the provider tests: a real HTTP server that plays Yahoo's chart API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from breadthflow.core.config import get_settings

YAHOO_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "yahoo"


def load_chart(name: str) -> dict[str, Any]:
    return json.loads((YAHOO_FIXTURES / name).read_text())


@dataclass
class ChartRequest:
    symbol: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class ChartServer:
    """State of the fake chart API; tests edit ``routes`` and ``failures``."""

    url: str = ""
    # (symbol, interval) → JSON payload answered with 200.
    routes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Statuses answered (one per request, in order) before any real answer.
    failures: list[int] = field(default_factory=list)
    requests: list[ChartRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int) -> None:
        with self.lock:
            self.failures.extend([status] * times)


def _handler(state: ChartServer) -> type[BaseHTTPRequestHandler]:
    not_found = load_chart("chart_not_found.json")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            prefix = "/v8/finance/chart/"
            if not parts.path.startswith(prefix):
                self._send(404, {"error": "unknown path"})
                return
            symbol = unquote(parts.path[len(prefix) :])
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with state.lock:
                state.requests.append(ChartRequest(symbol, query, dict(self.headers.items())))
                status = state.failures.pop(0) if state.failures else None
            if status is not None:
                self._send(status, {"finance": {"error": {"code": str(status)}}})
                return
            payload = state.routes.get((symbol, query.get("interval", "")))
            if payload is None:
                self._send(404, not_found)
            else:
                self._send(200, payload)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def chart_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChartServer]:
    """A chart API on 127.0.0.1 serving the committed fixtures; the yahoo provider is
    pointed at it through BREADTHFLOW_YAHOO_BASE_URL."""
    state = ChartServer(
        routes={
            ("DHR", "1d"): load_chart("chart_DHR_1d.json"),
            ("AAPL", "5m"): load_chart("chart_AAPL_5m.json"),
        }
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="chart-api", daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("BREADTHFLOW_YAHOO_BASE_URL", state.url)
    get_settings.cache_clear()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
