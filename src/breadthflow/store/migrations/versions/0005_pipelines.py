"""Pipelines: definitions, runs, steps, log lines, checkpoints and alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

- ``pipelines``: stored definitions plus ``next_run_at`` for the scheduler.
- ``pipeline_runs``: one row per run; ``(pipeline_id, scheduled_for)`` is unique, so a due
  run is inserted once however many schedulers race for it.
- ``run_steps`` / ``run_logs``: what a run did, step by step and line by line.
- ``run_checkpoints``: progress per step and symbol, so an interrupted run resumes.
- ``alerts``: fired alert rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("universe", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("schedule", sa.String(length=128), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("trigger_mode", sa.String(length=16), nullable=False),
        sa.Column("scanner_tickers", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("retry_policy", sa.JSON(), nullable=False),
        sa.Column("error_policy", sa.String(length=16), nullable=False),
        sa.Column("notifications", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            _in("kind", ("breadth", "research", "training", "paper")),
            name=op.f("ck_pipelines_kind"),
        ),
        sa.CheckConstraint(
            _in("mode", ("demo", "all_symbols", "custom_symbols")), name=op.f("ck_pipelines_mode")
        ),
        sa.CheckConstraint(
            _in("trigger_mode", ("periodic", "signal")), name=op.f("ck_pipelines_trigger_mode")
        ),
        sa.CheckConstraint(
            _in("error_policy", ("retry", "skip", "stop")), name=op.f("ck_pipelines_error_policy")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("name", name=op.f("uq_pipelines_name")),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("trigger_payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_for", TS, nullable=True),
        sa.Column("queued_at", TS, nullable=False),
        sa.Column("start_time", TS, nullable=True),
        sa.Column("end_time", TS, nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("symbols_processed", sa.Integer(), nullable=False),
        sa.Column("signals_generated", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("backtest_results", sa.JSON(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.Column("config_snapshot", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cpu_seconds", sa.Float(), nullable=True),
        sa.Column("peak_memory_mb", sa.Float(), nullable=True),
        sa.CheckConstraint(
            _in("trigger", ("schedule", "manual", "signal", "api")),
            name=op.f("ck_pipeline_runs_trigger"),
        ),
        sa.CheckConstraint(
            _in("status", ("queued", "running", "succeeded", "partial", "failed", "cancelled")),
            name=op.f("ck_pipeline_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_runs_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_pipeline_runs")),
        sa.UniqueConstraint(
            "pipeline_id",
            "scheduled_for",
            name=op.f("uq_pipeline_runs_pipeline_id_scheduled_for"),
        ),
    )
    op.create_index(op.f("ix_pipeline_runs_status"), "pipeline_runs", ["status"])
    op.create_index(
        op.f("ix_pipeline_runs_pipeline_id_start_time"),
        "pipeline_runs",
        ["pipeline_id", "start_time"],
    )
    op.create_table(
        "run_steps",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            _in("status", ("running", "succeeded", "partial", "failed", "skipped")),
            name=op.f("ck_run_steps_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.run_id"],
            name=op.f("fk_run_steps_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_steps")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_run_steps_run_id_name")),
    )
    op.create_table(
        "run_logs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.run_id"],
            name=op.f("fk_run_logs_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_logs")),
    )
    op.create_index(op.f("ix_run_logs_run_id_id"), "run_logs", ["run_id", "id"])
    op.create_table(
        "run_checkpoints",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_runs.run_id"],
            name=op.f("fk_run_checkpoints_run_id_pipeline_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_checkpoints")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_alerts_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_created_at"), "alerts", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_created_at"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("run_checkpoints")
    op.drop_index(op.f("ix_run_logs_run_id_id"), table_name="run_logs")
    op.drop_table("run_logs")
    op.drop_table("run_steps")
    op.drop_index(op.f("ix_pipeline_runs_pipeline_id_start_time"), table_name="pipeline_runs")
    op.drop_index(op.f("ix_pipeline_runs_status"), table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipelines")
