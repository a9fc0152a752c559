"""An index for the trigger dispatcher's per-batch check: open runs of given pipelines.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_pipeline_runs_pipeline_id_status"), "pipeline_runs", ["pipeline_id", "status"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pipeline_runs_pipeline_id_status"), table_name="pipeline_runs")
