"""The embedded event bus log, consumer-group offsets and the outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

- ``bus_events``: every event, in the transaction of the change that caused it. With the
  embedded bus (``sqlite``/``postgres``) this is the bus; with an external bus it is the
  outbox, and ``relayed_at`` marks what the relay has forwarded.
- ``bus_groups``: per topic and consumer group, the last ``seq`` taken from the log.
- ``bus_pending``: delivered, not yet acknowledged messages and when they become
  visible to the group again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bus_events",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("relayed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bus_events")),
    )
    op.create_index(op.f("ix_bus_events_topic_seq"), "bus_events", ["topic", "seq"])
    op.create_index(op.f("ix_bus_events_relayed_at_seq"), "bus_events", ["relayed_at", "seq"])
    op.create_table(
        "bus_groups",
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("topic", "group_name", name=op.f("pk_bus_groups")),
    )
    op.create_table(
        "bus_pending",
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("group_name", sa.String(length=64), nullable=False),
        sa.Column("seq", BIG_ID, nullable=False),
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("visible_at", TS, nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["bus_events.seq"],
            name=op.f("fk_bus_pending_seq_bus_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("topic", "group_name", "seq", name=op.f("pk_bus_pending")),
    )
    op.create_index(
        op.f("ix_bus_pending_topic_group_name_visible_at"),
        "bus_pending",
        ["topic", "group_name", "visible_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bus_pending_topic_group_name_visible_at"), table_name="bus_pending")
    op.drop_table("bus_pending")
    op.drop_table("bus_groups")
    op.drop_index(op.f("ix_bus_events_relayed_at_seq"), table_name="bus_events")
    op.drop_index(op.f("ix_bus_events_topic_seq"), table_name="bus_events")
    op.drop_table("bus_events")
