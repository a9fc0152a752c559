"""ORM models of the metadata DB (SQLAlchemy 2 typed declarative).

The schema itself is owned by the Alembic migrations in ``store/migrations/versions``;
these classes must describe exactly the same tables (a test compares them on SQLite and
PostgreSQL). To change the schema, change a model *and* add a migration.

Portability rules followed here, so one schema runs on SQLite and PostgreSQL:

- no native ENUM types (a CHECK constraint on a string instead), so adding a value never
  needs a type migration;
- every timestamp is :class:`UTCDateTime`: timezone-aware UTC in Python on both
  databases, although SQLite stores no offset;
- constraint names come from :data:`NAMING_CONVENTION`, so Alembic batch mode on SQLite
  can find, drop and recreate them by name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

INGESTION_STATUSES = ("running", "succeeded", "partial", "failed")
SIGNAL_TYPES = ("BUY", "SELL", "HOLD")
BACKTEST_KINDS = ("run", "optimize", "walkforward", "montecarlo")
BACKTEST_STATUSES = ("running", "succeeded", "failed")
SCAN_STATUSES = ("running", "succeeded", "partial", "failed")
PIPELINE_KINDS = ("breadth", "research", "training", "paper")
PIPELINE_MODES = ("demo", "all_symbols", "custom_symbols")
TRIGGER_MODES = ("periodic", "signal")
ERROR_POLICIES = ("retry", "skip", "stop")
RUN_TRIGGERS = ("schedule", "manual", "signal", "api")
RUN_STATUSES = ("queued", "running", "succeeded", "partial", "failed", "cancelled")
STEP_STATUSES = ("running", "succeeded", "partial", "failed", "skipped")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


# Column widths. Symbols are at most 20 characters after normalize_symbol(); the slack
# keeps an odd vendor ticker from failing a whole ingestion on PostgreSQL.
SYMBOL_LENGTH = 32
NAME_LENGTH = 64


def utcnow() -> dt.datetime:
    """The current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC on the Python side.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall-clock time as text and
    hands back naive values, which are re-tagged as UTC here. Naive datetimes are
    refused on the way in: guessing their zone is how off-by-hours bugs are born.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} — pass a timezone-aware value")
        value = value.astimezone(dt.UTC)
        # SQLite has no zone support: store the UTC wall-clock so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every table in the metadata DB."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- universes ----------------------------------------------------------------------------


class Universe(Base):
    """A user-defined, named list of symbols (built-in universes live in code)."""

    __tablename__ = "universes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class UniverseSymbol(Base):
    """One member of a universe. The primary key makes duplicates impossible."""

    __tablename__ = "universe_symbols"
    __table_args__ = (
        # Positions are unique per universe, so the stored order is unambiguous; the
        # index behind this constraint also serves "symbols of universe X in order".
        UniqueConstraint("universe_id", "position"),
    )

    universe_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("universes.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


# --- ingestions (one row per `data fetch`) ------------------------------------------------


class Ingestion(Base):
    """One run of ``data fetch``: what was asked, what was stored, how it ended."""

    __tablename__ = "ingestions"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in INGESTION_STATUSES) + ")",
            name="status",
        ),
        Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(NAME_LENGTH))
    timeframe: Mapped[str] = mapped_column(String(8))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    symbols_requested: Mapped[int] = mapped_column(Integer)
    symbols_stored: Mapped[int] = mapped_column(Integer, default=0)
    symbols_failed: Mapped[int] = mapped_column(Integer, default=0)
    # Row counts can exceed 2**31 for long intraday histories of a large universe.
    rows_received: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_inserted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_updated: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class IngestionIssue(Base):
    """A data problem found during an ingestion (mirrors ``core.models.DataIssue``)."""

    __tablename__ = "ingestion_issues"
    __table_args__ = (
        CheckConstraint("rows >= 0", name="rows_not_negative"),
        # Serves both "issues of ingestion N" and "issues of ingestion N of kind K".
        Index(None, "ingestion_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ingestion_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ingestions.id", ondelete="CASCADE")
    )
    symbol: Mapped[str | None] = mapped_column(String(SYMBOL_LENGTH))
    date: Mapped[dt.date | None] = mapped_column(Date)
    # A plain string, not a CHECK list: new IssueKind values must not need a migration.
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer, default=1)


class IngestionFailure(Base):
    """A symbol that could not be fetched or stored (mirrors ``core.models.SymbolFailure``).

    A surrogate key rather than ``(ingestion_id, symbol)``: one symbol may fail at two
    stages of the same fetch (download, then write), and both errors are worth keeping.
    """

    __tablename__ = "ingestion_failures"
    __table_args__ = (Index(None, "ingestion_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ingestion_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ingestions.id", ondelete="CASCADE")
    )
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LENGTH))
    error: Mapped[str] = mapped_column(Text)


# --- signals ------------------------------------------------------------------------------

# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class SignalRow(Base):
    """One BUY/SELL/HOLD signal (mirrors ``core.models.Signal``).

    ``pipeline_run_id`` is '' (not NULL) for signals generated by hand, so the unique
    key below also holds for them: regenerating replaces instead of duplicating.
    """

    __tablename__ = "signals"
    __table_args__ = (
        CheckConstraint(
            "signal_type IN (" + ", ".join(f"'{s}'" for s in SIGNAL_TYPES) + ")",
            name="signal_type",
        ),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        UniqueConstraint("strategy", "timeframe", "pipeline_run_id", "symbol", "date"),
        Index(None, "date"),
        Index(None, "symbol", "date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Market-level signals carry the universe name, so as wide as a universe name.
    symbol: Mapped[str] = mapped_column(String(NAME_LENGTH))
    date: Mapped[dt.date] = mapped_column(Date)
    timeframe: Mapped[str] = mapped_column(String(8))
    strategy: Mapped[str] = mapped_column(String(NAME_LENGTH))
    signal_type: Mapped[str] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float)
    strength: Mapped[float | None] = mapped_column(Float)
    factors: Mapped[dict[str, Any]] = mapped_column(JSON)
    create_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    pipeline_run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")


# --- backtests ----------------------------------------------------------------------------


class BacktestRow(Base):
    """One backtest or research run. The equity curve and trade list live in the lake
    under ``artifacts``; this row holds what is needed to list, compare and reproduce it."""

    __tablename__ = "backtests"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in BACKTEST_KINDS) + ")", name="kind"
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in BACKTEST_STATUSES) + ")", name="status"
        ),
        Index(None, "created_at"),
        Index(None, "strategy"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(NAME_LENGTH))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    universe: Mapped[str] = mapped_column(String(NAME_LENGTH))
    symbols: Mapped[list[str]] = mapped_column(JSON)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[str | None] = mapped_column(Text)
    pipeline_run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    seconds: Mapped[float | None] = mapped_column(Float)


# --- scans --------------------------------------------------------------------------------


class ScanRow(Base):
    """One scan of the universe with a formula; the matches live in the lake under
    ``artifacts``, the counts here."""

    __tablename__ = "scans"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in SCAN_STATUSES) + ")", name="status"
        ),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    formula: Mapped[str] = mapped_column(Text)
    universe: Mapped[str] = mapped_column(String(NAME_LENGTH))
    symbols: Mapped[int] = mapped_column(Integer)
    timeframe: Mapped[str] = mapped_column(String(8))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")
    matches: Mapped[int] = mapped_column(Integer, default=0)
    symbols_matched: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[str | None] = mapped_column(Text)
    pipeline_run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    seconds: Mapped[float | None] = mapped_column(Float)


# --- pipelines ----------------------------------------------------------------------------


class PipelineRow(Base):
    """A stored pipeline definition (validated by ``pipelines.definitions``), plus the
    scheduler's bookkeeping: when it is next due."""

    __tablename__ = "pipelines"
    __table_args__ = (
        CheckConstraint(_in("kind", PIPELINE_KINDS), name="kind"),
        CheckConstraint(_in("mode", PIPELINE_MODES), name="mode"),
        CheckConstraint(_in("trigger_mode", TRIGGER_MODES), name="trigger_mode"),
        CheckConstraint(_in("error_policy", ERROR_POLICIES), name="error_policy"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    symbols: Mapped[list[str]] = mapped_column(JSON)
    universe: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    provider: Mapped[str] = mapped_column(String(NAME_LENGTH))
    schedule: Mapped[str | None] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    trigger_mode: Mapped[str] = mapped_column(String(16))
    scanner_tickers: Mapped[list[str]] = mapped_column(JSON)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    retry_policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_policy: Mapped[str] = mapped_column(String(16))
    notifications: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PipelineRunRow(Base):
    """One run of a pipeline. ``scheduled_for`` is unique per pipeline, so a due run can
    be inserted only once however many schedulers race for it."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        CheckConstraint(_in("trigger", RUN_TRIGGERS), name="trigger"),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        UniqueConstraint("pipeline_id", "scheduled_for"),
        Index(None, "status"),
        Index(None, "pipeline_id", "start_time"),
        # The dispatcher's "already queued or running?" check, once per batch.
        Index(None, "pipeline_id", "status"),
    )

    run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    trigger: Mapped[str] = mapped_column(String(16))
    trigger_payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    start_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    symbols_processed: Mapped[int] = mapped_column(Integer, default=0)
    signals_generated: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    backtest_results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    config_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)


class RunStepRow(Base):
    """One step of a run (fetch, breadth, signals, backtest …)."""

    __tablename__ = "run_steps"
    __table_args__ = (
        CheckConstraint(_in("status", STEP_STATUSES), name="status"),
        UniqueConstraint("run_id", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(NAME_LENGTH), ForeignKey("pipeline_runs.run_id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class RunLogRow(Base):
    """One log line of a run, for ``pipeline logs`` and the dashboard."""

    __tablename__ = "run_logs"
    __table_args__ = (Index(None, "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(NAME_LENGTH), ForeignKey("pipeline_runs.run_id", ondelete="CASCADE")
    )
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(10))
    step: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    message: Mapped[str] = mapped_column(Text)


class RunCheckpointRow(Base):
    """Progress a run has made (per step, per symbol), so an interrupted run resumes."""

    __tablename__ = "run_checkpoints"

    run_id: Mapped[str] = mapped_column(
        String(NAME_LENGTH),
        ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRow(Base):
    """A fired alert rule (run failed, error rate, slow run, pipeline late)."""

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    pipeline_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("pipelines.id", ondelete="CASCADE")
    )
    run_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


# --- the embedded event bus and the outbox (migration 0006) --------------------------------

TOPIC_LENGTH = 128


class BusEventRow(Base):
    """One event: the embedded bus's log, and the outbox of an external bus.

    ``seq`` orders a topic (publishers of one topic are serialised until commit, so
    ``seq`` order is commit order); ``relayed_at`` is set once the relay has forwarded
    the event to an external bus."""

    __tablename__ = "bus_events"
    __table_args__ = (
        Index(None, "topic", "seq"),
        Index(None, "relayed_at", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(TOPIC_LENGTH))
    event_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    relayed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BusGroupRow(Base):
    """A consumer group of a topic on the embedded bus: the last log ``seq`` it has taken."""

    __tablename__ = "bus_groups"

    topic: Mapped[str] = mapped_column(String(TOPIC_LENGTH), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BusPendingRow(Base):
    """A message delivered to a group and not acknowledged yet; it goes back to the group
    when ``visible_at`` passes (its consumer died or is too slow)."""

    __tablename__ = "bus_pending"
    __table_args__ = (Index(None, "topic", "group_name", "visible_at"),)

    topic: Mapped[str] = mapped_column(String(TOPIC_LENGTH), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(
        BigId, ForeignKey("bus_events.seq", ondelete="CASCADE"), primary_key=True
    )
    consumer: Mapped[str] = mapped_column(String(128))
    visible_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)


# --- model registry and paper trading (migration 0007) -------------------------------------

MODEL_STATUSES = ("candidate", "production", "archived")
ORDER_SIDES = ("BUY", "SELL")
ORDER_STATUSES = ("pending", "filled", "cancelled", "rejected")


class ModelVersionRow(Base):
    """One trained, versioned model. The artefact lives under ``$HOME/models``; ``sha256``
    is checked before it is ever loaded, so only files the registry wrote are read."""

    __tablename__ = "ml_models"
    __table_args__ = (
        CheckConstraint(_in("status", MODEL_STATUSES), name="status"),
        UniqueConstraint("name", "version"),
        Index(None, "name", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    estimator: Mapped[str] = mapped_column(String(NAME_LENGTH))
    task: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[list[str]] = mapped_column(JSON)
    horizon: Mapped[int] = mapped_column(Integer)
    universe: Mapped[str] = mapped_column(String(NAME_LENGTH))
    symbols: Mapped[list[str]] = mapped_column(JSON)
    data_start: Mapped[dt.date] = mapped_column(Date)
    data_end: Mapped[dt.date] = mapped_column(Date)
    folds: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    sklearn_version: Mapped[str] = mapped_column(String(32))
    artifact: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    pipeline_run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PaperAccountRow(Base):
    """A paper-trading account (one per paper pipeline): cash and the bar it has reached."""

    __tablename__ = "paper_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    broker: Mapped[str] = mapped_column(String(NAME_LENGTH))
    initial_cash: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    fees_paid: Mapped[float] = mapped_column(Float, default=0.0)
    fees: Mapped[float] = mapped_column(Float, default=0.0)
    slippage: Mapped[float] = mapped_column(Float, default=0.0)
    last_bar_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperOrderRow(Base):
    """An order of a paper account. ``client_order_id`` is unique per account, so a
    resumed run that submits the same order again gets the stored one back."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        CheckConstraint(_in("side", ORDER_SIDES), name="side"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        UniqueConstraint("account_id", "client_order_id"),
        Index(None, "account_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("paper_accounts.id", ondelete="CASCADE")
    )
    client_order_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LENGTH))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    signal_date: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    filled_date: Mapped[dt.date | None] = mapped_column(Date)
    filled_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    fill_price: Mapped[float | None] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    pipeline_run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")


class PaperFillRow(Base):
    """One execution of a paper order."""

    __tablename__ = "paper_fills"
    __table_args__ = (Index(None, "account_id", "date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("paper_orders.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("paper_accounts.id", ondelete="CASCADE")
    )
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LENGTH))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float, default=0.0)
    date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperPositionRow(Base):
    """An open position of a paper account; ``avg_cost`` includes the buy fees."""

    __tablename__ = "paper_positions"

    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LENGTH), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)
    avg_cost: Mapped[float] = mapped_column(Float)
    last_price: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaperEquityRow(Base):
    """The account marked to the close of one bar: the paper equity curve."""

    __tablename__ = "paper_equity"

    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("paper_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    cash: Mapped[float] = mapped_column(Float)
    positions_value: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)


# --- API tokens and the command audit (migration 0008) ------------------------------------

TOKEN_SCOPES = ("read", "write", "admin")
COMMAND_STATUSES = ("running", "succeeded", "failed", "rejected")


class ApiTokenRow(Base):
    """A bearer token of the HTTP API. Only its SHA-256 is stored; ``prefix`` (the first
    characters of the token) lets a person tell tokens apart in ``token list``."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in("scope", TOKEN_SCOPES), name="scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CommandAuditRow(Base):
    """One ``/execute`` call: who (token), what (command and parameters), when, result."""

    __tablename__ = "command_audit"
    __table_args__ = (
        CheckConstraint(_in("status", COMMAND_STATUSES), name="status"),
        Index(None, "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    token_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    client: Mapped[str | None] = mapped_column(String(128))
    command: Mapped[str] = mapped_column(String(NAME_LENGTH))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
