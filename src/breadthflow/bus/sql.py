"""The embedded bus: a durable event log in the metadata DB (``sqlite`` / ``postgres``).

``bus_events`` is the log (``seq`` orders it); ``bus_groups`` holds each consumer
group's position in a topic; ``bus_pending`` holds what a group has been handed and not
acknowledged, with the time it becomes visible again. A consume, in one transaction:

1. takes pending messages whose visibility has expired (redelivery), skipping rows
   another consumer has locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL);
2. if that is not enough, locks the group's row, reads the log after its position,
   records those messages as pending for this consumer, and moves the position.

So consumers of a group split the log without duplicates, and a message is only lost
to a group when it is acknowledged. On SQLite the transaction starts with
``BEGIN IMMEDIATE`` (one writer at a time), which gives the same guarantees. Publishers
of a topic are serialised until commit (see :func:`breadthflow.bus.outbox.lock_topic`),
so ``seq`` order is commit order and a position never skips a late commit.

Waiting consumers poll (every 20 ms at first, backing off to ``poll_interval``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from breadthflow.bus._base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    EventBus,
    RawMessage,
    Start,
    float_option,
    register_bus,
    reject_unknown_options,
)
from breadthflow.bus.outbox import record_raw
from breadthflow.core.config import Settings
from breadthflow.store.db import Database, open_database
from breadthflow.store.models import BusEventRow, BusGroupRow, BusPendingRow, utcnow


class SqlBus(EventBus):
    """The event log in the metadata DB. Thread-safe (one transaction per call)."""

    embedded = True

    def __init__(
        self,
        db: Database,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        poll_interval: float = 0.25,
    ) -> None:
        self.db = db
        self.url = "postgres" if db.dialect == "postgresql" else "sqlite"
        self.visibility_timeout = visibility_timeout
        self.poll_interval = poll_interval

    def _publish_raw(self, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]) -> None:
        with self.db.session() as session:
            self._begin(session)
            record_raw(session, topic, payloads)

    def _begin(self, session: Session) -> None:
        if self.db.dialect == "sqlite":
            # Take the write lock first: a read-then-write transaction could otherwise
            # fail with SQLITE_BUSY when another writer commits in between.
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")

    # --- consuming -------------------------------------------------------------------------

    def _fetch(
        self, topic: str, group: str, consumer: str, max_messages: int, timeout: float,
        start: Start,
    ) -> list[RawMessage]:  # fmt: skip
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            taken = (
                self._take(topic, group, consumer, max_messages, start)
                if self._has_work(topic, group)
                else []
            )
            left = deadline - time.monotonic()
            if taken or left <= 0:
                return taken
            time.sleep(min(pause, left))
            pause = min(pause * 2, self.poll_interval)

    def _has_work(self, topic: str, group: str) -> bool:
        """A read-only look first, so idle consumers polling a SQLite file do not take its
        write lock several times a second."""
        with self.db.session() as session:
            position = session.scalar(
                select(BusGroupRow.position).where(
                    BusGroupRow.topic == topic, BusGroupRow.group_name == group
                )
            )
            if position is None:
                return True  # the group must be created
            fresh = select(BusEventRow.seq).where(
                BusEventRow.topic == topic, BusEventRow.seq > position
            )
            due = select(BusPendingRow.seq).where(
                BusPendingRow.topic == topic,
                BusPendingRow.group_name == group,
                BusPendingRow.visible_at <= utcnow(),
            )
            return bool(
                session.scalar(select(fresh.exists())) or session.scalar(select(due.exists()))
            )

    def _take(
        self, topic: str, group: str, consumer: str, limit: int, start: Start
    ) -> list[RawMessage]:
        now = utcnow()
        visible_at = now + dt.timedelta(seconds=self.visibility_timeout)
        mine = (BusPendingRow.topic == topic, BusPendingRow.group_name == group)
        with self.db.session() as session:
            self._begin(session)
            self._ensure_group(session, topic, group, start)
            due = list(
                session.scalars(
                    select(BusPendingRow.seq)
                    .where(*mine, BusPendingRow.visible_at <= now)
                    .order_by(BusPendingRow.seq)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if due:
                session.execute(
                    update(BusPendingRow)
                    .where(*mine, BusPendingRow.seq.in_(due))
                    .values(
                        consumer=consumer,
                        visible_at=visible_at,
                        deliveries=BusPendingRow.deliveries + 1,
                    ),
                    execution_options={"synchronize_session": False},
                )
            fresh: list[tuple[int, str]] = []
            if len(due) < limit:
                position = session.scalar(
                    select(BusGroupRow.position)
                    .where(BusGroupRow.topic == topic, BusGroupRow.group_name == group)
                    .with_for_update()
                )
                fresh = [
                    (seq, payload)
                    for seq, payload in session.execute(
                        select(BusEventRow.seq, BusEventRow.payload)
                        .where(BusEventRow.topic == topic, BusEventRow.seq > (position or 0))
                        .order_by(BusEventRow.seq)
                        .limit(limit - len(due))
                    )
                ]
                if fresh:
                    session.execute(
                        insert(BusPendingRow),
                        [
                            {
                                "topic": topic,
                                "group_name": group,
                                "seq": seq,
                                "consumer": consumer,
                                "visible_at": visible_at,
                                "deliveries": 1,
                            }
                            for seq, _ in fresh
                        ],
                    )
                    session.execute(
                        update(BusGroupRow)
                        .where(BusGroupRow.topic == topic, BusGroupRow.group_name == group)
                        .values(position=fresh[-1][0]),
                        execution_options={"synchronize_session": False},
                    )
            taken = [RawMessage(str(seq), payload, 1) for seq, payload in fresh]
            if due:
                again = session.execute(
                    select(BusEventRow.seq, BusEventRow.payload, BusPendingRow.deliveries)
                    .join(BusPendingRow, BusPendingRow.seq == BusEventRow.seq)
                    .where(*mine, BusPendingRow.seq.in_(due))
                )
                taken += [RawMessage(str(seq), payload, n) for seq, payload, n in again]
        return sorted(taken, key=lambda m: int(m.id))

    def _ensure_group(self, session: Session, topic: str, group: str, start: Start) -> None:
        exists = session.scalar(
            select(BusGroupRow.position).where(
                BusGroupRow.topic == topic, BusGroupRow.group_name == group
            )
        )
        if exists is not None:
            return
        position = 0
        if start == "latest":
            position = (
                session.scalar(select(func.max(BusEventRow.seq)).where(BusEventRow.topic == topic))
                or 0
            )
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        session.execute(
            dialect.insert(BusGroupRow)
            .values(topic=topic, group_name=group, position=position, created_at=utcnow())
            .on_conflict_do_nothing()
        )

    def _ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        seqs = [int(i) for i in ids if str(i).isdigit()]
        if not seqs:
            return
        with self.db.session() as session:
            session.execute(
                delete(BusPendingRow).where(
                    BusPendingRow.topic == topic,
                    BusPendingRow.group_name == group,
                    BusPendingRow.seq.in_(seqs),
                ),
                execution_options={"synchronize_session": False},
            )

    # --- introspection ---------------------------------------------------------------------

    def lag(self, topic: str, group: str) -> int:
        with self.db.session() as session:
            position = session.scalar(
                select(BusGroupRow.position).where(
                    BusGroupRow.topic == topic, BusGroupRow.group_name == group
                )
            )
            unread = session.scalar(
                select(func.count())
                .select_from(BusEventRow)
                .where(BusEventRow.topic == topic, BusEventRow.seq > (position or 0))
            )
            pending = session.scalar(
                select(func.count())
                .select_from(BusPendingRow)
                .where(BusPendingRow.topic == topic, BusPendingRow.group_name == group)
            )
        return int(unread or 0) + int(pending or 0)

    def groups(self, topic: str) -> list[str]:
        with self.db.session() as session:
            return sorted(
                session.scalars(select(BusGroupRow.group_name).where(BusGroupRow.topic == topic))
            )

    def delete_group(self, topic: str, group: str) -> None:
        with self.db.session() as session:
            for table in (BusPendingRow, BusGroupRow):
                session.execute(
                    delete(table).where(table.topic == topic, table.group_name == group),
                    execution_options={"synchronize_session": False},
                )


@register_bus("sqlite", "postgres", "postgresql")
def _open(url: str, options: dict[str, str], settings: Settings, db: Database | None) -> SqlBus:
    # Both names mean "the log in the metadata DB", whichever database that is, so the
    # default keeps working when only BREADTHFLOW_DATABASE_URL moves to PostgreSQL.
    visibility = float_option(options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    poll = float_option(options, "poll_interval", 0.25)
    reject_unknown_options(url, options)
    return SqlBus(db or open_database(settings.resolved_database_url), visibility, poll)
