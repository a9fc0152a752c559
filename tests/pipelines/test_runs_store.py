"""The run queue and run records on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.pipelines.definitions import definition_from
from breadthflow.store import close_all
from breadthflow.store.db import Database, open_database
from breadthflow.store.models import PipelineRunRow, utcnow
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository

SLOT = dt.datetime(2024, 3, 4, 16, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _no_cached_databases() -> Iterator[None]:
    # PostgreSQL drops the schema between tests: no pooled connection may outlive one.
    close_all()
    yield
    close_all()


@pytest.fixture
def db(db_url: str) -> Database:
    return open_database(db_url)


@pytest.fixture
def runs(db: Database) -> RunRepository:
    return RunRepository(db)


def make_pipeline(db: Database, name: str = "daily") -> int:
    definition = definition_from({"name": name, "schedule": "5m"}).model_dump(mode="json")
    return PipelineRepository(db).create(definition, None)


# --- the queue ------------------------------------------------------------------------------


def test_claim_takes_the_oldest_queued_run_first(db: Database, runs: RunRepository) -> None:
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")
    first = runs.enqueue(daily, "manual", {"by": "me"}, {"name": "daily"})
    second = runs.enqueue(weekly, "api")

    claimed = runs.claim_next("worker-1", pipeline_limit=5)
    assert claimed is not None and claimed.run_id == first
    assert claimed.status == "running" and claimed.worker == "worker-1"
    assert claimed.start_time is not None and claimed.heartbeat_at is not None
    assert claimed.attempt == 1 and claimed.pipeline_name == "daily"
    assert claimed.trigger_payload == {"by": "me"} and claimed.config_snapshot == {"name": "daily"}
    assert runs.claim_next("worker-1", pipeline_limit=5).run_id == second
    assert runs.claim_next("worker-1") is None


def test_claim_keeps_the_per_pipeline_limit(db: Database, runs: RunRepository) -> None:
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")
    d1, d2 = runs.enqueue(daily, "manual"), runs.enqueue(daily, "manual")
    w1 = runs.enqueue(weekly, "manual")

    assert runs.claim_next("w", pipeline_limit=1).run_id == d1
    # d2 is older than w1, but daily already has its one running run.
    assert runs.claim_next("w", pipeline_limit=1).run_id == w1
    assert runs.claim_next("w", pipeline_limit=1) is None
    runs.finish(d1, "succeeded")
    assert runs.claim_next("w", pipeline_limit=1).run_id == d2


def test_claim_keeps_the_total_limit(db: Database, runs: RunRepository) -> None:
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")
    runs.enqueue(daily, "manual")
    runs.enqueue(weekly, "manual")

    assert runs.claim_next("w", total_limit=1) is not None
    assert runs.claim_next("w", total_limit=1) is None
    assert runs.claim_next("w", total_limit=2) is not None


def test_a_scheduled_slot_is_queued_once(db: Database, runs: RunRepository) -> None:
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")

    first = runs.enqueue(daily, "schedule", scheduled_for=SLOT)
    assert first is not None
    assert runs.enqueue(daily, "schedule", scheduled_for=SLOT) is None
    # Another pipeline, or another slot, is another run.
    assert runs.enqueue(weekly, "schedule", scheduled_for=SLOT) is not None
    assert runs.enqueue(daily, "schedule", scheduled_for=SLOT + dt.timedelta(minutes=5))
    assert [r.run_id for r in runs.list(pipeline_id=daily) if r.scheduled_for == SLOT] == [first]


def test_enqueue_refuses_unknown_pipelines_and_triggers(runs: RunRepository) -> None:
    with pytest.raises(NotFoundError, match="no pipeline with id 999"):
        runs.enqueue(999, "manual")
    with pytest.raises(InvalidInputError, match="unknown trigger 'cron'"):
        runs.enqueue(1, "cron")


def test_two_processes_never_claim_the_same_run_nor_break_the_limit(
    db: Database, runs: RunRepository, db_url: str
) -> None:
    # 12 pipelines with 2 queued runs each, at most 1 running per pipeline: two racing
    # workers must claim exactly one run of every pipeline between them, none twice.
    queued: dict[str, str] = {}
    for number in range(12):
        pipeline = f"p{number:02d}"
        pipeline_id = make_pipeline(db, pipeline)
        for _ in range(2):
            queued[runs.enqueue(pipeline_id, "manual")] = pipeline

    claimed = race_claims(db_url, pipeline_limit=1)

    assert claimed[0] and claimed[1], f"both workers should get runs: {claimed}"
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 12
    assert sorted(queued[run_id] for run_id in everything) == sorted(set(queued.values()))
    running = runs.list(status="running")
    assert sorted(r.run_id for r in running) == sorted(everything)
    assert {r.worker for r in running} == {"w0", "w1"}


def claim_until_none(url: str, worker: str, limit: int, barrier: Any, out: Any) -> None:
    """A worker process: claim runs until none may start, report them."""
    # A new engine: pooled connections inherited through fork belong to the parent.
    repo = RunRepository(Database(url))
    barrier.wait(timeout=30)
    claimed = []
    while (run := repo.claim_next(worker, pipeline_limit=limit)) is not None:
        claimed.append(run.run_id)
        time.sleep(0.01)  # a little work, so the two workers interleave
    out.put((worker, claimed))


def race_claims(db_url: str, pipeline_limit: int) -> list[list[str]]:
    """Two worker processes start claiming at the same moment; what each got."""
    # fork: the children start at once, with everything already imported.
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [
        context.Process(
            target=claim_until_none, args=(db_url, f"w{i}", pipeline_limit, barrier, out)
        )
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        results = dict(out.get(timeout=60) for _ in workers)
        for worker in workers:
            worker.join(timeout=10)
            assert worker.exitcode == 0
        return [results["w0"], results["w1"]]
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()


# --- run records ----------------------------------------------------------------------------


def test_start_heartbeat_and_finish_record_the_run(db: Database, runs: RunRepository) -> None:
    run_id = runs.enqueue(make_pipeline(db), "manual")

    started = runs.start(run_id, "me:1")
    assert started.status == "running" and started.worker == "me:1"
    with pytest.raises(InvalidInputError, match="is running, not queued"):
        runs.start(run_id, "me:1")
    assert runs.heartbeat(run_id, "me:1") is True
    assert runs.heartbeat(run_id, "someone-else") is False

    done = runs.finish(
        run_id,
        "partial",
        symbols_processed=4,
        signals_generated=7,
        error_count=1,
        error=None,
        backtest_results={"sharpe": 1.2, "bad": float("nan")},
        cpu_seconds=0.5,
        peak_memory_mb=123.0,
    )
    assert done.status == "partial" and done.end_time >= done.start_time
    assert done.duration is not None and done.duration >= 0
    assert (done.symbols_processed, done.signals_generated, done.error_count) == (4, 7, 1)
    assert done.backtest_results == {"sharpe": 1.2, "bad": None}
    assert (done.cpu_seconds, done.peak_memory_mb) == (0.5, 123.0)
    assert runs.get(run_id) == done
    assert runs.heartbeat(run_id) is False


def test_cancel_ends_a_queued_run_and_flags_a_running_one(
    db: Database, runs: RunRepository
) -> None:
    pipeline = make_pipeline(db)
    queued, running = runs.enqueue(pipeline, "manual"), runs.enqueue(pipeline, "manual")
    runs.start(running, "me")

    assert runs.cancel(queued).status == "cancelled"
    assert runs.claim_next("w", pipeline_limit=5) is None
    assert runs.cancel(running).status == "cancelled"
    assert runs.heartbeat(running, "me") is False  # how its runner learns to stop
    with pytest.raises(InvalidInputError, match="already finished"):
        runs.cancel(queued)
    with pytest.raises(NotFoundError, match="no pipeline run 'run-nope'"):
        runs.cancel("run-nope")


def test_stale_runs_can_be_requeued_or_failed(db: Database, runs: RunRepository) -> None:
    pipeline = make_pipeline(db)
    stale, fresh, dead = (runs.enqueue(pipeline, "manual") for _ in range(3))
    for run_id in (stale, fresh, dead):
        runs.start(run_id, "w")
    old = utcnow() - dt.timedelta(minutes=10)
    with db.session() as session:
        session.execute(
            update(PipelineRunRow)
            .where(PipelineRunRow.run_id.in_([stale, dead]))
            .values(heartbeat_at=old)
        )

    found = runs.stale_running(dt.timedelta(minutes=2))
    assert {r.run_id for r in found} == {stale, dead}

    assert runs.requeue(stale) is True
    again = runs.get(stale)
    assert (again.status, again.attempt, again.worker, again.start_time) == (
        "queued",
        2,
        None,
        None,
    )
    assert runs.requeue(stale) is False  # already queued
    assert runs.mark_failed(dead, "worker lost") is True
    assert runs.get(dead).status == "failed" and runs.get(dead).error == "worker lost"
    assert runs.mark_failed(dead, "again") is False
    assert runs.stale_running(dt.timedelta(minutes=2)) == []


def test_list_last_run_and_busy_pipelines(db: Database, runs: RunRepository) -> None:
    daily, weekly = make_pipeline(db, "daily"), make_pipeline(db, "weekly")
    failed = runs.enqueue(daily, "manual")
    runs.start(failed, "w")
    runs.finish(failed, "failed", error="boom")
    newest = runs.enqueue(daily, "signal", {"tickers": ["AAPL"]})

    assert [r.run_id for r in runs.list(pipeline_id=daily)] == [newest, failed]
    assert [r.run_id for r in runs.list(status="failed")] == [failed]
    assert [r.run_id for r in runs.list(limit=1, offset=1)] == [failed]
    assert runs.last_run(daily).run_id == newest
    assert runs.last_run(daily, statuses=["failed", "succeeded"]).run_id == failed
    assert runs.last_run(daily, exclude=newest).run_id == failed
    assert runs.last_run(weekly) is None
    assert runs.busy_pipelines() == {daily}
    assert runs.busy_pipelines([weekly]) == set()
    with pytest.raises(InvalidInputError, match="unknown run status 'done'"):
        runs.list(status="done")


# --- steps, logs, checkpoints ---------------------------------------------------------------


def test_steps_round_trip_and_restart_in_place(db: Database, runs: RunRepository) -> None:
    run_id = runs.enqueue(make_pipeline(db), "manual")
    fetch = runs.start_step(run_id, "fetch")
    runs.finish_step(fetch, "succeeded", {"rows": 252})
    breadth = runs.start_step(run_id, "breadth")
    runs.finish_step(breadth, "failed", {}, error="ValueError: empty frame")

    steps = runs.steps(run_id)
    assert [(s.position, s.name, s.status) for s in steps] == [
        (1, "fetch", "succeeded"),
        (2, "breadth", "failed"),
    ]
    assert steps[0].detail == {"rows": 252} and steps[0].duration >= 0
    assert steps[1].error == "ValueError: empty frame"

    # The next attempt restarts the failed step in place.
    assert runs.start_step(run_id, "breadth") == breadth
    restarted = runs.steps(run_id)[1]
    assert (restarted.status, restarted.error, restarted.position) == ("running", None, 2)


def test_logs_can_be_followed_with_after_id(db: Database, runs: RunRepository) -> None:
    run_id = runs.enqueue(make_pipeline(db), "manual")
    runs.log(run_id, "info", "started")
    runs.log(run_id, "WARNING", "AAPL: no data", step="fetch")

    first = runs.logs(run_id)
    assert [(line.level, line.step, line.message) for line in first] == [
        ("INFO", None, "started"),
        ("WARNING", "fetch", "AAPL: no data"),
    ]
    assert runs.logs(run_id, after_id=first[-1].id) == []
    runs.log(run_id, 40, "boom")
    assert [line.message for line in runs.logs(run_id, after_id=first[-1].id)] == ["boom"]
    assert len(runs.logs(run_id, limit=2)) == 2


def test_checkpoints_upsert_copy_and_clear(db: Database, runs: RunRepository) -> None:
    pipeline = make_pipeline(db)
    run_id, next_run = runs.enqueue(pipeline, "manual"), runs.enqueue(pipeline, "manual")
    runs.save_checkpoint(run_id, "fetch:AAPL", {"rows": 1})
    runs.save_checkpoint(run_id, "fetch:AAPL", {"rows": 2})
    runs.save_checkpoint(run_id, "fetch", {})

    assert runs.checkpoints(run_id) == {"fetch:AAPL": {"rows": 2}, "fetch": {}}
    assert runs.copy_checkpoints(run_id, next_run) == 2
    assert runs.clear_checkpoints(run_id) == 2
    assert runs.checkpoints(run_id) == {}
    assert runs.checkpoints(next_run) == {"fetch:AAPL": {"rows": 2}, "fetch": {}}
