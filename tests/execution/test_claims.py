"""Taking a named run (what a Celery task does), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from breadthflow.core.config import load_settings
from breadthflow.execution.celery_executor import CeleryConfig, execute_run
from breadthflow.execution.claims import Claim, claim_run, holder_is_dead, recover_run
from breadthflow.pipelines.definitions import definition_from
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.db import Database, open_database
from breadthflow.store.models import PipelineRunRow, utcnow
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository

HOST = socket.gethostname()


@pytest.fixture(autouse=True)
def _no_cached_databases() -> Iterator[None]:
    close_all()
    yield
    close_all()


@pytest.fixture
def db(db_url: str) -> Database:
    return open_database(db_url)


def make_pipeline(db: Database, name: str = "daily") -> int:
    definition = definition_from({"name": name, "schedule": "5m"}).model_dump(mode="json")
    return PipelineRepository(db).create(definition, None)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def set_heartbeat(db: Database, run_id: str, age: dt.timedelta) -> None:
    with db.session() as session:
        session.execute(
            update(PipelineRunRow)
            .where(PipelineRunRow.run_id == run_id)
            .values(heartbeat_at=utcnow() - age)
        )


def test_claim_moves_the_named_run_to_running(db: Database) -> None:
    runs = RunRepository(db)
    pipeline = make_pipeline(db)
    older, named = runs.enqueue(pipeline, "manual"), runs.enqueue(pipeline, "manual")
    assert claim_run(db, named, f"{HOST}:1/celery") is Claim.CLAIMED
    assert runs.get(named).status == "running" and runs.get(named).worker == f"{HOST}:1/celery"
    assert runs.get(older).status == "queued"  # not the oldest: the one named


def test_a_second_claim_of_the_same_run_gets_nothing(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    assert claim_run(db, run_id, "a:1") is Claim.CLAIMED
    assert claim_run(db, run_id, "b:2") is Claim.GONE
    assert runs.get(run_id).worker == "a:1"


def test_a_run_waits_while_its_pipeline_runs_another(db: Database) -> None:
    runs = RunRepository(db)
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")
    first, second = runs.enqueue(daily, "manual"), runs.enqueue(daily, "manual")
    other = runs.enqueue(weekly, "manual")
    assert claim_run(db, first, "a:1") is Claim.CLAIMED
    assert claim_run(db, second, "a:2") is Claim.BUSY
    assert claim_run(db, other, "a:3") is Claim.CLAIMED  # another pipeline is not held up
    assert claim_run(db, second, "a:2", pipeline_limit=2) is Claim.CLAIMED


def test_a_cancelled_run_is_not_claimed(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    runs.cancel(run_id)
    assert claim_run(db, run_id, "a:1") is Claim.GONE


def test_a_worker_on_this_host_whose_process_is_gone_is_dead_at_once(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    claim_run(db, run_id, f"{HOST}:{dead_pid()}/celery")
    assert holder_is_dead(runs.get(run_id), dt.timedelta(hours=1))

    alive = runs.enqueue(make_pipeline(db, "alive"), "manual")
    claim_run(db, alive, f"{HOST}:{os.getpid()}/celery")
    assert not holder_is_dead(runs.get(alive), dt.timedelta(hours=1))


def test_a_worker_elsewhere_is_dead_once_its_heartbeat_is_stale(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    claim_run(db, run_id, "other-host:4242/celery")
    assert not holder_is_dead(runs.get(run_id), dt.timedelta(seconds=60))
    set_heartbeat(db, run_id, dt.timedelta(seconds=61))
    assert holder_is_dead(runs.get(run_id), dt.timedelta(seconds=60))


def test_recovery_requeues_then_fails_after_the_last_attempt(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    claim_run(db, run_id, "gone:1")
    assert recover_run(db, runs.get(run_id), max_attempts=2) == "requeued"
    again = runs.get(run_id)
    assert (again.status, again.attempt, again.worker) == ("queued", 2, None)

    claim_run(db, run_id, "gone:2")
    assert recover_run(db, runs.get(run_id), max_attempts=2) == "failed"
    failed = runs.get(run_id)
    assert failed.status == "failed" and "attempt 2 of 2" in (failed.error or "")
    assert any("worker died" in line.message for line in runs.logs(run_id))


def test_only_one_of_two_recoveries_of_a_run_wins(db: Database) -> None:
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    claim_run(db, run_id, "gone:1")
    seen = runs.get(run_id)  # both deliveries read the run before either recovers it
    assert recover_run(db, seen, max_attempts=3) == "requeued"
    assert recover_run(db, seen, max_attempts=3) == "raced"
    assert runs.get(run_id).attempt == 2


# --- execute_run without a broker: the decisions a task makes ---------------------------------


@pytest.fixture
def ctx(db_url: str) -> AppContext:
    return AppContext(settings=load_settings(database_url=db_url, log_json=False))


CONFIG = CeleryConfig.parse("celery+redis://127.0.0.1:6379/0?stale_after=60&max_attempts=1")


def test_a_task_for_a_finished_or_unknown_run_does_nothing(ctx: AppContext) -> None:
    runs = RunRepository(ctx.db)
    run_id = runs.enqueue(make_pipeline(ctx.db), "manual")
    runs.cancel(run_id)
    before = runs.get(run_id)
    assert execute_run(ctx, run_id, CONFIG) == "skipped: cancelled"
    assert runs.get(run_id) == before
    assert execute_run(ctx, "run-ffffffffffff", CONFIG) == "missing"


def test_a_task_for_a_run_a_live_worker_has_does_nothing(ctx: AppContext) -> None:
    runs = RunRepository(ctx.db)
    run_id = runs.enqueue(make_pipeline(ctx.db), "manual")
    claim_run(ctx.db, run_id, f"{HOST}:{os.getpid()}/celery")
    before = runs.get(run_id)
    assert execute_run(ctx, run_id, CONFIG).startswith("skipped: running on")
    assert runs.get(run_id) == before


def test_a_task_finding_its_dead_workers_last_attempt_fails_the_run(ctx: AppContext) -> None:
    runs = RunRepository(ctx.db)
    run_id = runs.enqueue(make_pipeline(ctx.db), "manual")
    claim_run(ctx.db, run_id, f"{HOST}:{dead_pid()}/celery")
    assert execute_run(ctx, run_id, CONFIG) == "failed"
    assert runs.get(run_id).status == "failed"


def test_a_claim_and_a_recovery_record_pipeline_events(db: Database) -> None:
    from breadthflow.bus import open_bus

    bus = open_bus("sqlite", load_settings(), db)
    runs = RunRepository(db)
    run_id = runs.enqueue(make_pipeline(db), "manual")
    claim_run(db, run_id, "gone:1")
    recover_run(db, runs.get(run_id), max_attempts=3)
    claim_run(db, run_id, "here:2")

    got = bus.consume("pipeline-events", "audit", "a1", 100, 0)
    got = [m for m in got if m.event.type.startswith("run.")]  # not the pipeline.created
    assert [(m.event.type, m.event.data["attempt"]) for m in got] == [
        ("run.queued", 1), ("run.running", 1), ("run.queued", 2), ("run.running", 2),
    ]  # fmt: skip
