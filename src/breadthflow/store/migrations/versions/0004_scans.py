"""Scans: one row per scan of a universe with a formula.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

The row holds the formula, the universe and range, the counts (matches, symbols matched,
symbols that failed) and where the matches are stored in the lake (``artifacts``). A scan
that is killed stays visible as ``running``; one where some symbols failed is ``partial``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scans",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("formula", sa.Text(), nullable=False),
        sa.Column("universe", sa.String(length=64), nullable=False),
        sa.Column("symbols", sa.Integer(), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matches", sa.Integer(), nullable=False),
        sa.Column("symbols_matched", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.Text(), nullable=True),
        sa.Column("pipeline_run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'partial', 'failed')",
            name=op.f("ck_scans_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
    )
    op.create_index(op.f("ix_scans_created_at"), "scans", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_scans_created_at"), table_name="scans")
    op.drop_table("scans")
