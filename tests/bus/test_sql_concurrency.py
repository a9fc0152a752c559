"""The embedded bus under concurrency, on SQLite and PostgreSQL: consumers of one group in
parallel threads (own connections) while publishers keep committing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from breadthflow.bus import Event
from breadthflow.bus.sql import SqlBus
from breadthflow.store import close_all, open_database
from breadthflow.store.db import Database

PUBLISHERS, PER_PUBLISHER, BATCH = 3, 60, 3
CONSUMERS = 4


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    close_all()
    yield open_database(db_url)
    close_all()


def test_parallel_consumers_get_every_message_once_while_publishers_commit(db: Database) -> None:
    bus = SqlBus(db, visibility_timeout=30)
    delivered: list[str] = []
    lock = threading.Lock()
    publishing = threading.Event()
    publishing.set()
    errors: list[BaseException] = []

    def publisher(p: int) -> None:
        try:
            for start in range(0, PER_PUBLISHER, BATCH):
                with db.session() as session:  # events in the caller's transaction
                    batch = [
                        Event(type="n", data={"p": p, "i": i}) for i in range(start, start + BATCH)
                    ]
                    bus.publish("work", batch, session=session)
                    time.sleep(0.002)  # hold the transaction open a little
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def consumer(name: str) -> None:
        try:
            idle = 0
            while idle < 20:
                batch = bus.consume("work", "workers", name, 5, 0.05)
                if batch:
                    idle = 0
                    with lock:
                        delivered.extend(m.event.id for m in batch)
                    bus.ack("work", "workers", batch)
                elif not publishing.is_set():
                    idle += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    consumers = [threading.Thread(target=consumer, args=(f"c{i}",)) for i in range(CONSUMERS)]
    publishers = [threading.Thread(target=publisher, args=(p,)) for p in range(PUBLISHERS)]
    for thread in consumers + publishers:
        thread.start()
    for thread in publishers:
        thread.join(60)
    publishing.clear()
    for thread in consumers:
        thread.join(60)

    assert not errors, errors
    counts = Counter(delivered)
    assert len(counts) == PUBLISHERS * PER_PUBLISHER  # nothing lost
    assert max(counts.values()) == 1  # nothing delivered twice
    assert bus.lag("work", "workers") == 0
