"""Taking one given run: what a remote worker does when a task for ``run_id`` arrives.

The local pool takes *the oldest* queued run (:meth:`RunRepository.claim_next`); a task
names its run. :func:`claim_run` moves that run ``queued → running`` under the same claim
lock, keeping the same rule (at most ``pipeline_limit`` running runs of one pipeline) and
recording the same ``run.running`` event, so local and remote workers may even share one
database. (It uses the repository's private claim lock and event helper: it belongs in
``RunRepository`` as ``claim(run_id, worker, pipeline_limit)``.)

A task may also find its run ``running``: a duplicate delivery while a live worker has it
(do nothing), or a redelivery after the worker that had it died (``kill -9``, a lost
machine). :func:`holder_is_dead` tells the two apart and :func:`recover_run` requeues the
run as its next attempt (it resumes from its checkpoints) or fails it after
``max_attempts`` — the same policy as the scheduler's stale-run recovery.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum

from sqlalchemy import func, select, update

from breadthflow.pipelines._process import local_worker_dead
from breadthflow.store import runs as runs_store
from breadthflow.store.db import Database
from breadthflow.store.models import PipelineRunRow, utcnow
from breadthflow.store.runs import RunRepository, RunSummary


class Claim(enum.Enum):
    """The result of :func:`claim_run`."""

    CLAIMED = "claimed"  # the run is now running for this worker
    BUSY = "busy"  # its pipeline already has pipeline_limit running runs: try later
    GONE = "gone"  # not queued any more (another worker took it, or it was cancelled)


def claim_run(db: Database, run_id: str, worker: str, pipeline_limit: int = 1) -> Claim:
    """Move ``run_id`` from ``queued`` to ``running`` for ``worker``, if its pipeline has
    fewer than ``pipeline_limit`` running runs. Safe against concurrent claims from any
    number of processes (local pool included)."""
    repo = RunRepository(db)
    with db.session() as session:
        # The claim lock of the local pool (BEGIN IMMEDIATE / advisory lock), so the
        # check below and the update are one step for every claimer.
        repo.lock_claims(session)
        pipeline_id = session.scalar(
            select(PipelineRunRow.pipeline_id).where(
                PipelineRunRow.run_id == run_id, PipelineRunRow.status == "queued"
            )
        )
        if pipeline_id is None:
            return Claim.GONE
        running = session.scalar(
            select(func.count()).where(
                PipelineRunRow.pipeline_id == pipeline_id, PipelineRunRow.status == "running"
            )
        )
        if (running or 0) >= pipeline_limit:
            return Claim.BUSY
        now = utcnow()
        result = session.execute(
            update(PipelineRunRow)
            .where(PipelineRunRow.run_id == run_id, PipelineRunRow.status == "queued")
            .values(status="running", worker=worker, start_time=now, heartbeat_at=now),
            execution_options={"synchronize_session": False},
        )
        if result.rowcount != 1:
            return Claim.GONE
        # The run.running pipeline event, in this transaction, as claim_next records it.
        runs_store.record_run_state(session, repo._summary(session, run_id))
        return Claim.CLAIMED


def holder_is_dead(run: RunSummary, stale_after: dt.timedelta) -> bool:
    """Whether the worker recorded on a running run is gone.

    Certain at once when it ran on this host and its process no longer exists (worker
    names are ``host:pid[/…]``); otherwise when its heartbeat is older than
    ``stale_after`` (the lifecycle beats every few seconds while it runs).
    """
    if local_worker_dead(run.worker):
        return True
    seen = run.heartbeat_at or run.start_time
    return seen is None or _utc(seen) < utcnow() - stale_after


def recover_run(db: Database, run: RunSummary, max_attempts: int) -> str:
    """Requeue a run whose worker died (→ ``"requeued"``), or fail it when it used
    ``max_attempts`` (→ ``"failed"``); ``"raced"`` when someone else got there first."""
    repo = RunRepository(db)
    who = f"worker {run.worker}" if run.worker else "its worker"
    if not _take_over(db, run):
        return "raced"
    if run.attempt < max_attempts:
        if not repo.requeue(run.run_id):
            return "raced"
        _log(repo, run.run_id, f"{who} died — queued again as attempt {run.attempt + 1} of "
                               f"{max_attempts}")  # fmt: skip
        return "requeued"
    error = f"worker died ({who}) on attempt {run.attempt} of {max_attempts} — not retried"
    if not repo.mark_failed(run.run_id, error):
        return "raced"
    _log(repo, run.run_id, error)
    return "failed"


def _take_over(db: Database, run: RunSummary) -> bool:
    """Compare-and-set the heartbeat, so of two deliveries (or a delivery and the
    scheduler's stale-run recovery) only one recovers the run, and a worker that was only
    slow (its heartbeat moved) is left alone."""
    guard = [
        PipelineRunRow.run_id == run.run_id,
        PipelineRunRow.status == "running",
        PipelineRunRow.attempt == run.attempt,
    ]
    if run.heartbeat_at is None:
        guard.append(PipelineRunRow.heartbeat_at.is_(None))
    else:
        guard.append(PipelineRunRow.heartbeat_at == run.heartbeat_at)
    with db.session() as session:
        result = session.execute(
            update(PipelineRunRow).where(*guard).values(heartbeat_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
        return result.rowcount == 1


def _log(repo: RunRepository, run_id: str, message: str) -> None:
    with contextlib.suppress(Exception):  # the run log is a courtesy, not the record
        repo.log(run_id, "WARNING", f"executor: {message}")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
