"""The outbox relay: forward events recorded in the metadata DB to an external bus.

Events are written to ``bus_events`` in the transaction of the change that caused them
(:mod:`breadthflow.bus.outbox`). The relay takes rows not yet relayed, oldest first,
publishes them topic by topic in order, and stamps ``relayed_at`` — in one transaction,
so a crash after publishing and before the stamp sends those events again on the next
pass (at-least-once; every event keeps its ``id``, and NATS even drops the repeat).
Several relays may run: on PostgreSQL each takes different rows (``SKIP LOCKED``), on
SQLite they take turns (``BEGIN IMMEDIATE``).

>>> relay = Relay(db, open_bus("redis://127.0.0.1:6379/0", settings))    # doctest: +SKIP
>>> relay.run_once()                                                       # doctest: +SKIP
3
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from breadthflow.bus._base import EventBus
from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.store.db import Database
from breadthflow.store.models import BusEventRow, utcnow

log = logging.getLogger(__name__)


class Relay:
    """Forward unrelayed ``bus_events`` rows of ``db`` to ``bus`` (an external bus)."""

    def __init__(self, db: Database, bus: EventBus, batch_size: int = 500) -> None:
        if bus.embedded:
            raise ConfigError(
                f"the {bus.url} bus keeps events in the metadata DB — there is nothing to relay"
            )
        self.db = db
        self.bus = bus
        self.batch_size = batch_size

    def run_once(self) -> int:
        """Forward up to ``batch_size`` events; return how many were sent."""
        with self.db.session() as session:
            if self.db.dialect == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            rows = session.execute(
                select(
                    BusEventRow.seq, BusEventRow.topic, BusEventRow.event_id, BusEventRow.payload
                )
                .where(BusEventRow.relayed_at.is_(None))
                .order_by(BusEventRow.seq)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            by_topic: dict[str, list[tuple[str | None, str]]] = {}
            for _seq, topic, event_id, payload in rows:
                by_topic.setdefault(topic, []).append((event_id or None, payload))
            for topic, payloads in by_topic.items():
                self.bus._publish_raw(topic, payloads)
            self._mark(session, [row[0] for row in rows])
        return len(rows)

    @staticmethod
    def _mark(session: Session, seqs: Sequence[int]) -> None:
        session.execute(
            update(BusEventRow).where(BusEventRow.seq.in_(seqs)).values(relayed_at=utcnow()),
            execution_options={"synchronize_session": False},
        )

    def drain(self) -> int:
        """Forward everything pending now; return how many were sent."""
        total = 0
        while sent := self.run_once():
            total += sent
        return total

    def run(self, stop: threading.Event, interval: float = 0.5, max_backoff: float = 30.0) -> None:
        """Relay until ``stop`` is set; an unreachable bus or DB is retried with backoff."""
        backoff = interval
        while not stop.is_set():
            try:
                sent = self.drain()
            except BackendUnavailableError as exc:
                log.warning("relay: %s — retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = interval
            if not sent:
                stop.wait(interval)
