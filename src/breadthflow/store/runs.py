"""Pipeline runs: the run queue, run records, steps, log lines and checkpoints.

A run is born ``queued`` (:meth:`RunRepository.enqueue`), becomes ``running`` when a
worker claims it (:meth:`RunRepository.claim_next`) or a foreground ``pipeline run``
starts it (:meth:`RunRepository.start`), and ends ``succeeded``, ``partial``, ``failed``
or ``cancelled`` (:meth:`RunRepository.finish`). While it runs it writes a heartbeat, so a
scheduler can find runs whose worker died (:meth:`RunRepository.stale_running`) and
requeue or fail them.

Two schedulers firing the same slot, or two workers claiming the same run, are safe on
both databases: a slot is unique per pipeline (the insert of the loser returns ``None``),
and claims are serialised (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory
lock on PostgreSQL) so the per-pipeline and total limits hold across processes.

>>> runs = RunRepository(db)                                                # doctest: +SKIP
>>> run_id = runs.enqueue(pipeline_id, "manual", {}, definition)          # doctest: +SKIP
>>> claimed = runs.claim_next("host:1234")                                # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, and_, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from breadthflow.bus.events import PIPELINE_EVENTS, Event
from breadthflow.bus.outbox import record as record_events
from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store._json import finite_or_none, json_safe
from breadthflow.store.db import Database
from breadthflow.store.models import (
    RUN_STATUSES,
    RUN_TRIGGERS,
    STEP_STATUSES,
    PipelineRow,
    PipelineRunRow,
    RunCheckpointRow,
    RunLogRow,
    RunStepRow,
    SignalRow,
    utcnow,
)

#: Statuses a run ends in.
FINISHED_STATUSES = ("succeeded", "partial", "failed", "cancelled")
#: Statuses of a run that is not finished yet.
OPEN_STATUSES = ("queued", "running")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Key of the PostgreSQL advisory lock that serialises claims ("bfclaims" in ASCII).
_CLAIM_LOCK_KEY = 0x6266636C61696D73


def new_run_id() -> str:
    """A fresh run id: ``run-`` and 12 random hex digits."""
    return f"run-{secrets.token_hex(6)}"


class RunSummary(BaseModel):
    """One run, as ``pipeline runs`` / ``pipeline show-run`` and the API show it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    pipeline_id: int
    pipeline_name: str | None
    trigger: str
    trigger_payload: dict[str, Any]
    status: str
    scheduled_for: dt.datetime | None
    queued_at: dt.datetime
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    duration: float | None
    symbols_processed: int
    signals_generated: int
    error_count: int
    backtest_results: dict[str, Any] | None
    attempt: int
    worker: str | None
    heartbeat_at: dt.datetime | None
    config_snapshot: dict[str, Any]
    error: str | None
    cpu_seconds: float | None
    peak_memory_mb: float | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class StepSummary(BaseModel):
    """One step of a run."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    position: int
    name: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration: float | None
    detail: dict[str, Any]
    error: str | None


class LogLine(BaseModel):
    """One log line of a run; ``id`` grows, so ``logs(after_id=last.id)`` follows a run."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    time: dt.datetime
    level: str
    step: str | None
    message: str


class RunRepository:
    """Record pipeline runs and read them back."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the queue --------------------------------------------------------------------------

    def enqueue(
        self,
        pipeline_id: int,
        trigger: str,
        payload: Mapping[str, Any] | None = None,
        config_snapshot: Mapping[str, Any] | None = None,
        scheduled_for: dt.datetime | None = None,
    ) -> str | None:
        """Queue a run and return its id.

        With ``scheduled_for``, a second enqueue of the same ``(pipeline, slot)`` returns
        ``None`` instead of a second run: that is how two schedulers fire a slot once.
        """
        if trigger not in RUN_TRIGGERS:
            raise InvalidInputError(
                f"unknown trigger '{trigger}' — expected one of {', '.join(RUN_TRIGGERS)}"
            )
        run_id = new_run_id()
        row = PipelineRunRow(
            run_id=run_id,
            pipeline_id=pipeline_id,
            trigger=trigger,
            trigger_payload=json_safe(dict(payload or {})),
            status="queued",
            scheduled_for=scheduled_for,
            queued_at=utcnow(),
            config_snapshot=json_safe(dict(config_snapshot or {})),
            attempt=1,
        )
        try:
            # Its own transaction: a unique violation rolls back only this insert, on
            # PostgreSQL too (where a failed statement poisons the whole transaction).
            with self.db.session() as session:
                session.add(row)
                session.flush()  # a slot already taken fails here, before the event
                record_run_event(session, run_id, pipeline_id, "queued", trigger, 1)
        except IntegrityError:
            with self.db.session() as session:
                if session.get(PipelineRow, pipeline_id) is None:
                    raise NotFoundError(f"no pipeline with id {pipeline_id}") from None
                taken = scheduled_for is not None and session.scalar(
                    select(PipelineRunRow.run_id).where(
                        PipelineRunRow.pipeline_id == pipeline_id,
                        PipelineRunRow.scheduled_for == scheduled_for,
                    )
                )
            if taken:
                return None
            raise
        return run_id

    def claim_next(
        self, worker: str, pipeline_limit: int = 1, total_limit: int | None = None
    ) -> RunSummary | None:
        """Move the oldest queued run to ``running`` for ``worker`` and return it.

        At most ``pipeline_limit`` runs of one pipeline and ``total_limit`` runs in all
        (across every worker) run at once; ``None`` when nothing may start now. Safe with
        any number of worker processes: the check and the update happen under a lock
        that other claims wait for.
        """
        if pipeline_limit < 1:
            raise InvalidInputError(f"invalid pipeline limit {pipeline_limit} — expected 1 or more")
        if total_limit is not None and total_limit < 1:
            raise InvalidInputError(f"invalid total limit {total_limit} — expected 1 or more")
        with self.db.session() as session:
            self.lock_claims(session)
            running = dict(
                session.execute(
                    select(PipelineRunRow.pipeline_id, func.count())
                    .where(PipelineRunRow.status == "running")
                    .group_by(PipelineRunRow.pipeline_id)
                ).all()
            )
            if total_limit is not None and sum(running.values()) >= total_limit:
                return None
            full = [pid for pid, count in running.items() if count >= pipeline_limit]
            query = select(PipelineRunRow.run_id).where(PipelineRunRow.status == "queued")
            if full:
                query = query.where(PipelineRunRow.pipeline_id.not_in(full))
            query = query.order_by(PipelineRunRow.queued_at, PipelineRunRow.run_id).limit(1)
            run_id = session.scalar(query)
            if run_id is None:
                return None
            now = utcnow()
            # Conditional on 'queued' as well, so a cancel that slipped in wins.
            claimed = session.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.run_id == run_id, PipelineRunRow.status == "queued")
                .values(status="running", worker=worker, start_time=now, heartbeat_at=now),
                execution_options={"synchronize_session": False},
            )
            if claimed.rowcount != 1:
                return None
            return record_run_state(session, self._summary(session, run_id))

    def lock_claims(self, session: Session) -> None:
        """Serialise claims until ``session``'s transaction ends (also for other writers
        that must not race a claim: the dispatcher's enqueue, a Celery task's claim)."""
        connection = session.connection()
        if self.db.dialect == "sqlite":
            # pysqlite has not begun a transaction yet (it does so lazily before DML);
            # IMMEDIATE takes the write lock now, so a second claimer waits here
            # (busy_timeout) and then sees this claim.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            # Row locks (FOR UPDATE SKIP LOCKED) would keep two workers off the same run,
            # but not keep the per-pipeline limit; one short lock per claim does both.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY})

    def start(self, run_id: str, worker: str) -> RunSummary:
        """Start a queued run in the foreground (``pipeline run``), without the limits."""
        now = utcnow()
        with self.db.session() as session:
            result = session.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.run_id == run_id, PipelineRunRow.status == "queued")
                .values(status="running", worker=worker, start_time=now, heartbeat_at=now),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:
                status = self._row(session, run_id).status
                raise InvalidInputError(f"run {run_id} is {status}, not queued — cannot start it")
            return record_run_state(session, self._summary(session, run_id))

    def heartbeat(self, run_id: str, worker: str | None = None) -> bool:
        """Record that the run is alive; False when it is no longer running (for
        ``worker``) — cancelled, or requeued to another worker — so the runner stops."""
        conditions = [PipelineRunRow.run_id == run_id, PipelineRunRow.status == "running"]
        if worker is not None:
            conditions.append(PipelineRunRow.worker == worker)
        with self.db.session() as session:
            result = session.execute(
                update(PipelineRunRow).where(*conditions).values(heartbeat_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
            return result.rowcount == 1

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        symbols_processed: int = 0,
        signals_generated: int = 0,
        error_count: int = 0,
        error: str | None = None,
        backtest_results: Mapping[str, Any] | None = None,
        cpu_seconds: float | None = None,
        peak_memory_mb: float | None = None,
    ) -> RunSummary:
        """Record how a run ended (its duration is measured from ``start_time``)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"a run cannot finish as {status!r}")
        with self.db.session() as session:
            row = self._row(session, run_id)
            now = utcnow()
            row.status = status
            row.end_time = now
            row.duration = (now - row.start_time).total_seconds() if row.start_time else None
            row.symbols_processed = symbols_processed
            row.signals_generated = signals_generated
            row.error_count = error_count
            row.error = error
            if backtest_results is not None:
                row.backtest_results = json_safe(dict(backtest_results))
            row.cpu_seconds = finite_or_none(cpu_seconds)
            row.peak_memory_mb = finite_or_none(peak_memory_mb)
            session.flush()
            return record_run_state(session, self._summary(session, run_id))

    def cancel(self, run_id: str) -> RunSummary:
        """Cancel a queued run at once, or ask a running one to stop: its runner sees the
        status on its next heartbeat and ends after the current unit of work."""
        now = utcnow()
        with self.db.session() as session:
            result = session.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.run_id == run_id, PipelineRunRow.status.in_(OPEN_STATUSES))
                .values(status="cancelled", end_time=now),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:
                status = self._row(session, run_id).status
                raise InvalidInputError(f"run {run_id} already finished ({status})")
            return record_run_state(session, self._summary(session, run_id))

    def mark_failed(self, run_id: str, error: str) -> bool:
        """Fail a run that has not finished (a dead worker's); False when it had."""
        with self.db.session() as session:
            row = self._row(session, run_id)
            if row.status not in OPEN_STATUSES:
                return False
            now = utcnow()
            row.status, row.error, row.end_time = "failed", error, now
            row.duration = (now - row.start_time).total_seconds() if row.start_time else None
            record_run_event(
                session, run_id, row.pipeline_id, "failed", row.trigger, row.attempt, error
            )
            return True

    def requeue(self, run_id: str) -> bool:
        """Queue a run again as its next attempt (checkpoints kept, so it resumes).

        Allowed for a running run (whose worker died), a failed, partial or cancelled
        one; False for a queued or succeeded run.
        """
        with self.db.session() as session:
            result = session.execute(
                update(PipelineRunRow)
                .where(
                    PipelineRunRow.run_id == run_id,
                    PipelineRunRow.status.in_(("running", "failed", "partial", "cancelled")),
                )
                .values(
                    status="queued",
                    attempt=PipelineRunRow.attempt + 1,
                    worker=None,
                    start_time=None,
                    end_time=None,
                    duration=None,
                    heartbeat_at=None,
                    error=None,
                ),
                execution_options={"synchronize_session": False},
            )
            if result.rowcount != 1:
                self._row(session, run_id)  # NotFoundError for an unknown id
                return False
            record_run_state(session, self._summary(session, run_id))
            return True

    # --- reading runs -----------------------------------------------------------------------

    def get(self, run_id: str) -> RunSummary:
        with self.db.session() as session:
            return self._summary(session, run_id)

    def list(
        self,
        pipeline_id: int | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Newest first."""
        if limit < 1:
            raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
        if offset < 0:
            raise InvalidInputError(f"invalid offset {offset} — expected 0 or more")
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInputError(
                f"unknown run status '{status}' — expected one of {', '.join(RUN_STATUSES)}"
            )
        query = _runs_query()
        if pipeline_id is not None:
            query = query.where(PipelineRunRow.pipeline_id == pipeline_id)
        if status is not None:
            query = query.where(PipelineRunRow.status == status)
        query = query.order_by(PipelineRunRow.queued_at.desc(), PipelineRunRow.run_id.desc())
        with self.db.session() as session:
            rows = session.execute(query.limit(limit).offset(offset)).all()
            return [_run_summary(row, name) for row, name in rows]

    def last_run(
        self,
        pipeline_id: int,
        statuses: Iterable[str] | None = None,
        exclude: str | None = None,
    ) -> RunSummary | None:
        """The newest run of a pipeline (optionally with one of ``statuses``, other than
        ``exclude``), or None."""
        query = _runs_query().where(PipelineRunRow.pipeline_id == pipeline_id)
        if statuses is not None:
            query = query.where(PipelineRunRow.status.in_(tuple(statuses)))
        if exclude is not None:
            query = query.where(PipelineRunRow.run_id != exclude)
        query = query.order_by(PipelineRunRow.queued_at.desc(), PipelineRunRow.run_id.desc())
        with self.db.session() as session:
            found = session.execute(query.limit(1)).first()
            return _run_summary(*found) if found else None

    def finished_runs(
        self,
        pipeline_id: int,
        statuses: Iterable[str] = FINISHED_STATUSES,
        limit: int = 20,
        exclude: str | None = None,
    ) -> list[RunSummary]:
        """The latest finished runs of a pipeline, newest end first (the alert rules'
        history)."""
        query = _runs_query().where(
            PipelineRunRow.pipeline_id == pipeline_id,
            PipelineRunRow.status.in_(tuple(statuses)),
            PipelineRunRow.end_time.is_not(None),
        )
        if exclude is not None:
            query = query.where(PipelineRunRow.run_id != exclude)
        query = query.order_by(PipelineRunRow.end_time.desc(), PipelineRunRow.run_id.desc())
        with self.db.session() as session:
            rows = session.execute(query.limit(limit)).all()
            return [_run_summary(row, name) for row, name in rows]

    def activity(self) -> dict[int, tuple[dt.datetime | None, bool]]:
        """Per pipeline with runs: (latest start time, whether a run is running now) —
        one query for every pipeline, for the ``late`` alert rule."""
        running = func.sum(case((PipelineRunRow.status == "running", 1), else_=0))
        query = select(
            PipelineRunRow.pipeline_id, func.max(PipelineRunRow.start_time), running
        ).group_by(PipelineRunRow.pipeline_id)
        with self.db.session() as session:
            return {pid: (started, bool(busy)) for pid, started, busy in session.execute(query)}

    def signal_coverage(
        self, pipeline_id: int, timeframe: str = "1d", exclude: str | None = None
    ) -> dict[str, dt.date]:
        """Per strategy, the newest signal date stored by the pipeline's runs (other than
        ``exclude``): where an incremental run's new signals start."""
        query = (
            select(SignalRow.strategy, func.max(SignalRow.date))
            .join(PipelineRunRow, PipelineRunRow.run_id == SignalRow.pipeline_run_id)
            .where(PipelineRunRow.pipeline_id == pipeline_id, SignalRow.timeframe == timeframe)
            .group_by(SignalRow.strategy)
        )
        if exclude is not None:
            query = query.where(SignalRow.pipeline_run_id != exclude)
        with self.db.session() as session:
            return {strategy: last for strategy, last in session.execute(query) if last}

    def running_runs(self) -> list[RunSummary]:
        """Every run in ``running``, oldest first."""
        query = _runs_query().where(PipelineRunRow.status == "running")
        with self.db.session() as session:
            rows = session.execute(query.order_by(PipelineRunRow.queued_at)).all()
            return [_run_summary(row, name) for row, name in rows]

    def stale_running(self, older_than: dt.timedelta) -> list[RunSummary]:
        """Runs still ``running`` whose last heartbeat is older than ``older_than``: their
        worker is gone, and the scheduler should requeue or fail them."""
        cutoff = utcnow() - older_than
        query = _runs_query().where(
            PipelineRunRow.status == "running",
            or_(
                PipelineRunRow.heartbeat_at < cutoff,
                and_(PipelineRunRow.heartbeat_at.is_(None), PipelineRunRow.start_time < cutoff),
            ),
        )
        with self.db.session() as session:
            rows = session.execute(query.order_by(PipelineRunRow.queued_at)).all()
            return [_run_summary(row, name) for row, name in rows]

    def busy_pipelines(self, pipeline_ids: Iterable[int] | None = None) -> set[int]:
        """Ids of pipelines with a queued or running run — one query for a whole batch."""
        query = (
            select(PipelineRunRow.pipeline_id)
            .where(PipelineRunRow.status.in_(OPEN_STATUSES))
            .distinct()
        )
        if pipeline_ids is not None:
            ids = list(pipeline_ids)
            if not ids:
                return set()
            query = query.where(PipelineRunRow.pipeline_id.in_(ids))
        with self.db.session() as session:
            return set(session.scalars(query))

    # --- steps ------------------------------------------------------------------------------

    def start_step(self, run_id: str, name: str) -> int:
        """Record that a step began and return its id. A step of the same name from an
        earlier attempt of the run is restarted in place (it keeps its position)."""
        now = utcnow()
        with self.db.session() as session:
            row = session.scalar(
                select(RunStepRow).where(RunStepRow.run_id == run_id, RunStepRow.name == name)
            )
            if row is None:
                last = session.scalar(
                    select(func.max(RunStepRow.position)).where(RunStepRow.run_id == run_id)
                )
                row = RunStepRow(
                    run_id=run_id, name=name, position=(last or 0) + 1, detail={}, started_at=now
                )
                session.add(row)
            row.status, row.started_at, row.finished_at = "running", now, None
            row.duration, row.error = None, None
            session.flush()
            return row.id

    def finish_step(
        self,
        step_id: int,
        status: str,
        detail: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        if status not in STEP_STATUSES or status == "running":
            raise ValueError(f"a step cannot finish as {status!r}")
        with self.db.session() as session:
            row = session.get(RunStepRow, step_id)
            if row is None:
                raise NotFoundError(f"no run step with id {step_id}")
            now = utcnow()
            row.status, row.finished_at, row.error = status, now, error
            row.duration = (now - row.started_at).total_seconds()
            row.detail = json_safe(dict(detail or {}))

    def steps(self, run_id: str) -> list[StepSummary]:
        query = select(RunStepRow).where(RunStepRow.run_id == run_id)
        with self.db.session() as session:
            rows = session.scalars(query.order_by(RunStepRow.position)).all()
            return [_step_summary(row) for row in rows]

    # --- logs -------------------------------------------------------------------------------

    def log(self, run_id: str, level: str | int, message: str, step: str | None = None) -> int:
        """Append a log line to a run; returns its id."""
        name = logging.getLevelName(level) if isinstance(level, int) else level.upper()
        if name not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        row = RunLogRow(run_id=run_id, level=name, message=message, step=step, time=utcnow())
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def logs(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogLine]:
        """Log lines in order; poll with ``after_id`` = the last id seen to follow a run."""
        query = (
            select(RunLogRow)
            .where(RunLogRow.run_id == run_id, RunLogRow.id > after_id)
            .order_by(RunLogRow.id)
            .limit(limit)
        )
        with self.db.session() as session:
            return [
                LogLine(
                    id=row.id,
                    run_id=row.run_id,
                    time=row.time,
                    level=row.level,
                    step=row.step,
                    message=row.message,
                )
                for row in session.scalars(query)
            ]

    # --- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self, run_id: str, key: str, value: Mapping[str, Any]) -> None:
        """Insert or replace one checkpoint of a run."""
        values = {
            "run_id": run_id,
            "key": key,
            "value": json_safe(dict(value)),
            "updated_at": utcnow(),
        }
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        statement = dialect.insert(RunCheckpointRow).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        with self.db.session() as session:
            session.execute(statement)

    def checkpoints(self, run_id: str) -> dict[str, dict[str, Any]]:
        query = select(RunCheckpointRow.key, RunCheckpointRow.value).where(
            RunCheckpointRow.run_id == run_id
        )
        with self.db.session() as session:
            return {key: dict(value or {}) for key, value in session.execute(query).all()}

    def copy_checkpoints(self, source_run_id: str, target_run_id: str) -> int:
        """Give ``target`` the checkpoints of ``source`` (a new run resuming an interrupted
        one); returns how many were copied."""
        found = self.checkpoints(source_run_id)
        for key, value in found.items():
            self.save_checkpoint(target_run_id, key, value)
        return len(found)

    def clear_checkpoints(self, run_id: str) -> int:
        with self.db.session() as session:
            result = session.execute(
                delete(RunCheckpointRow).where(RunCheckpointRow.run_id == run_id),
                execution_options={"synchronize_session": False},
            )
            return result.rowcount

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, run_id: str) -> PipelineRunRow:
        row = session.get(PipelineRunRow, run_id)
        if row is None:
            raise NotFoundError(f"no pipeline run '{run_id}' — `pipeline runs` lists them")
        return row

    @staticmethod
    def _summary(session: Session, run_id: str) -> RunSummary:
        found = session.execute(_runs_query().where(PipelineRunRow.run_id == run_id)).first()
        if found is None:
            raise NotFoundError(f"no pipeline run '{run_id}' — `pipeline runs` lists them")
        return _run_summary(*found)


def record_run_event(
    session: Session,
    run_id: str,
    pipeline_id: int,
    status: str,
    trigger: str,
    attempt: int,
    error: str | None = None,
) -> None:
    """Record a ``pipeline-events`` event in the transaction that changed the run."""
    data: dict[str, Any] = {
        "run_id": run_id,
        "pipeline_id": pipeline_id,
        "status": status,
        "trigger": trigger,
        "attempt": attempt,
    }
    if error:
        data["error"] = error
    event = Event(type=f"run.{status}", source="breadthflow.pipelines", data=data)
    record_events(session, PIPELINE_EVENTS, [event])


def record_run_state(session: Session, run: RunSummary) -> RunSummary:
    """Record ``run``'s current state as a ``pipeline-events`` event; return the run."""
    record_run_event(
        session, run.run_id, run.pipeline_id, run.status, run.trigger, run.attempt, run.error
    )
    return run


def _runs_query() -> Select[tuple[PipelineRunRow, str | None]]:
    return select(PipelineRunRow, PipelineRow.name).outerjoin(
        PipelineRow, PipelineRow.id == PipelineRunRow.pipeline_id
    )


def _run_summary(row: PipelineRunRow, pipeline_name: str | None) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        pipeline_id=row.pipeline_id,
        pipeline_name=pipeline_name,
        trigger=row.trigger,
        trigger_payload=row.trigger_payload or {},
        status=row.status,
        scheduled_for=row.scheduled_for,
        queued_at=row.queued_at,
        start_time=row.start_time,
        end_time=row.end_time,
        duration=row.duration,
        symbols_processed=row.symbols_processed or 0,
        signals_generated=row.signals_generated or 0,
        error_count=row.error_count or 0,
        backtest_results=row.backtest_results,
        attempt=row.attempt,
        worker=row.worker,
        heartbeat_at=row.heartbeat_at,
        config_snapshot=row.config_snapshot or {},
        error=row.error,
        cpu_seconds=row.cpu_seconds,
        peak_memory_mb=row.peak_memory_mb,
    )


def _step_summary(row: RunStepRow) -> StepSummary:
    return StepSummary(
        id=row.id,
        run_id=row.run_id,
        position=row.position,
        name=row.name,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration=row.duration,
        detail=row.detail or {},
        error=row.error,
    )
