"""API tokens (hashed) and the command audit log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

- ``api_tokens``: bearer tokens of the HTTP API, stored as the SHA-256 of the token (the
  token itself is shown once, when it is created); ``scope`` is read, write or admin.
- ``command_audit``: every ``/execute`` call — who, what, when, and how it ended.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.CheckConstraint(
            _in("scope", ("read", "write", "admin")), name=op.f("ck_api_tokens_scope")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "command_audit",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("client", sa.String(length=128), nullable=True),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.CheckConstraint(
            _in("status", ("running", "succeeded", "failed", "rejected")),
            name=op.f("ck_command_audit_status"),
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_command_audit_token_id_api_tokens"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_command_audit")),
    )
    op.create_index(op.f("ix_command_audit_time"), "command_audit", ["time"])


def downgrade() -> None:
    op.drop_index(op.f("ix_command_audit_time"), table_name="command_audit")
    op.drop_table("command_audit")
    op.drop_table("api_tokens")
