"""Backtests: one row per backtest or research run (optimise, walk-forward, Monte Carlo).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

The row holds the inputs (strategy, params, universe, symbols, range, engine config), the
outcome (status, stats as JSON, error) and where the equity curve and trades are stored in
the lake (``artifacts``). A run that is killed stays visible as ``running``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("universe", sa.String(length=64), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("artifacts", sa.Text(), nullable=True),
        sa.Column("pipeline_run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('run', 'optimize', 'walkforward', 'montecarlo')",
            name=op.f("ck_backtests_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_backtests_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtests")),
    )
    op.create_index(op.f("ix_backtests_created_at"), "backtests", ["created_at"])
    op.create_index(op.f("ix_backtests_strategy"), "backtests", ["strategy"])


def downgrade() -> None:
    op.drop_index(op.f("ix_backtests_strategy"), table_name="backtests")
    op.drop_index(op.f("ix_backtests_created_at"), table_name="backtests")
    op.drop_table("backtests")
