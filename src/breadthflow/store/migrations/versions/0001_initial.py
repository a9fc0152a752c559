"""Initial schema: user universes and the ingestion log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

- ``universes`` / ``universe_symbols``: named symbol lists; the primary key
  ``(universe_id, symbol)`` makes a duplicate in one list impossible, ``position`` keeps
  the order the user gave.
- ``ingestions``: one row per ``data fetch`` (a killed fetch stays visible as 'running'),
  with ``ingestion_issues`` (data problems found and fixed or flagged) and
  ``ingestion_failures`` (symbols that could not be fetched or stored).

Timestamps are ``DateTime(timezone=True)``: ``timestamptz`` on PostgreSQL, UTC text on
SQLite (the ORM type ``UTCDateTime`` re-attaches the zone).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "universes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_universes")),
        sa.UniqueConstraint("name", name=op.f("uq_universes_name")),
    )
    op.create_table(
        "universe_symbols",
        sa.Column("universe_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["universe_id"],
            ["universes.id"],
            name=op.f("fk_universe_symbols_universe_id_universes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("universe_id", "symbol", name=op.f("pk_universe_symbols")),
        sa.UniqueConstraint(
            "universe_id", "position", name=op.f("uq_universe_symbols_universe_id_position")
        ),
    )

    op.create_table(
        "ingestions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("symbols_requested", sa.Integer(), nullable=False),
        sa.Column("symbols_stored", sa.Integer(), nullable=False),
        sa.Column("symbols_failed", sa.Integer(), nullable=False),
        sa.Column("rows_received", sa.BigInteger(), nullable=False),
        sa.Column("rows_inserted", sa.BigInteger(), nullable=False),
        sa.Column("rows_updated", sa.BigInteger(), nullable=False),
        sa.Column("rows_unchanged", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'partial', 'failed')",
            name=op.f("ck_ingestions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestions")),
    )
    op.create_index(op.f("ix_ingestions_started_at"), "ingestions", ["started_at"])

    op.create_table(
        "ingestion_issues",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ingestion_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=True),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.CheckConstraint("rows >= 0", name=op.f("ck_ingestion_issues_rows_not_negative")),
        sa.ForeignKeyConstraint(
            ["ingestion_id"],
            ["ingestions.id"],
            name=op.f("fk_ingestion_issues_ingestion_id_ingestions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_issues")),
    )
    op.create_index(
        op.f("ix_ingestion_issues_ingestion_id_kind"), "ingestion_issues", ["ingestion_id", "kind"]
    )

    op.create_table(
        "ingestion_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ingestion_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ingestion_id"],
            ["ingestions.id"],
            name=op.f("fk_ingestion_failures_ingestion_id_ingestions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingestion_failures")),
    )
    op.create_index(
        op.f("ix_ingestion_failures_ingestion_id"), "ingestion_failures", ["ingestion_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ingestion_failures_ingestion_id"), table_name="ingestion_failures")
    op.drop_table("ingestion_failures")
    op.drop_index(op.f("ix_ingestion_issues_ingestion_id_kind"), table_name="ingestion_issues")
    op.drop_table("ingestion_issues")
    op.drop_index(op.f("ix_ingestions_started_at"), table_name="ingestions")
    op.drop_table("ingestions")
    op.drop_table("universe_symbols")
    op.drop_table("universes")
