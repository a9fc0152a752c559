"""Record events in the metadata DB, in the caller's transaction (the outbox).

Store repositories call :func:`record` inside the session that makes a change, so the
event and the change commit together or not at all. With the embedded bus the
``bus_events`` table *is* the bus; with an external bus, :mod:`breadthflow.bus.relay`
forwards the rows and stamps ``relayed_at``.

>>> with db.session() as session:                                         # doctest: +SKIP
...     session.add(row)
...     record(session, "pipeline-events", [Event(type="run.queued", data={...})])
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session

from breadthflow.bus.events import Event, validate_topic
from breadthflow.store.db import Database
from breadthflow.store.models import BusEventRow, utcnow


def topic_lock_key(topic: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key for one topic."""
    digest = hashlib.blake2b(f"bf-topic:{topic}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_topic(session: Session, topic: str) -> None:
    """Serialise writers of ``topic`` until the transaction ends (PostgreSQL).

    Sequence values are handed out at insert time but become visible at commit; without
    this lock a consumer could read seq 6, move its position past it, and only then see
    seq 5 commit — and never deliver it. SQLite has a single writer, so nothing to do.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": topic_lock_key(topic)})


def record(session: Session, topic: str, events: Sequence[Event]) -> None:
    """Write ``events`` to ``topic`` in ``session``'s transaction, in order."""
    record_raw(session, topic, [(e.id, e.to_json()) for e in events])


def record_raw(
    session: Session, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]
) -> None:
    """Write ``(event id, payload)`` pairs as they are (payloads need not be valid)."""
    validate_topic(topic)
    if not payloads:
        return
    lock_topic(session, topic)
    now = utcnow()
    session.execute(
        insert(BusEventRow),
        [
            {
                "topic": topic,
                "event_id": (event_id or "")[:64],
                "payload": p.decode("utf-8", "replace") if isinstance(p, bytes) else p,
                "created_at": now,
                "relayed_at": None,
            }
            for event_id, p in payloads
        ],
    )


def prune(db: Database, before: dt.datetime, *, relayed_only: bool) -> int:
    """Delete events recorded before ``before`` (the retention of the log and outbox);
    with ``relayed_only``, only those the relay has forwarded. Deliveries pending for a
    deleted event go with it. Returns how many events were deleted."""
    query = delete(BusEventRow).where(BusEventRow.created_at < before)
    if relayed_only:
        query = query.where(BusEventRow.relayed_at.is_not(None))
    with db.session() as session:
        result = session.execute(query, execution_options={"synchronize_session": False})
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
