"""Signals: BUY/SELL/HOLD rows produced by strategies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

One row per (strategy, timeframe, pipeline run, symbol, date) — the unique key is what
makes regenerating a range replace its rows. ``pipeline_run_id`` is '' for signals made
by hand (NULLs would escape the unique key). ``factors`` is JSON: the inputs that drove
the decision, different per strategy.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("signal_type", sa.String(length=4), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("strength", sa.Float(), nullable=True),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "signal_type IN ('BUY', 'SELL', 'HOLD')", name=op.f("ck_signals_signal_type")
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_signals_confidence_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.UniqueConstraint(
            "strategy",
            "timeframe",
            "pipeline_run_id",
            "symbol",
            "date",
            name=op.f("uq_signals_strategy_timeframe_pipeline_run_id_symbol_date"),
        ),
    )
    op.create_index(op.f("ix_signals_date"), "signals", ["date"])
    op.create_index(op.f("ix_signals_symbol_date"), "signals", ["symbol", "date"])


def downgrade() -> None:
    op.drop_index(op.f("ix_signals_symbol_date"), table_name="signals")
    op.drop_index(op.f("ix_signals_date"), table_name="signals")
    op.drop_table("signals")
