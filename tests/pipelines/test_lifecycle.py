"""The run lifecycle: steps, error policies, resume, cancel and shutdown, as recorded."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from breadthflow.pipelines.definitions import PipelineDefinition, RetryPolicy, definition_from
from breadthflow.pipelines.lifecycle import PipelineLifecycle
from breadthflow.pipelines.retry import backoff_delays
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.store import close_all
from breadthflow.store.db import Database, open_database
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.store.runs import RunRepository

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture(autouse=True)
def _no_cached_databases() -> Iterator[None]:
    close_all()
    yield
    close_all()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture
def repo(sqlite_url: str) -> RunRepository:
    return RunRepository(open_database(sqlite_url))


class Demo(PipelineLifecycle):
    """Fetch every symbol with ``work``, then summarise; remembers what it did."""

    def __init__(
        self,
        *args: Any,
        work: Callable[[str], dict | None] | None = None,
        fail_in: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("sleep", lambda seconds: None)
        super().__init__(*args, **kwargs)
        self.work = work or (lambda symbol: {"rows": len(symbol)})
        self.fail_in = fail_in
        self.events: list[str] = []

    def initialize(self) -> None:
        self.events.append("initialize")
        if self.fail_in == "initialize":
            raise RuntimeError("cannot open the lake")

    def execute(self) -> None:
        fetched = self.for_each_symbol("fetch", self.definition.symbols, self.work)
        with self.step("summarise") as step:
            if not step.resumed:
                if self.fail_in == "summarise":
                    raise ValueError("no bars to summarise")
                step.detail["symbols"] = len(fetched.succeeded)
                self.counts.signals_generated += len(fetched.succeeded)

    def cleanup(self) -> None:
        self.events.append("cleanup")


def new_run(repo: RunRepository, **values: Any) -> tuple[PipelineDefinition, str]:
    """A stored pipeline (custom symbols AAA…DDD) and a queued run of it."""
    definition = definition_from(
        {"name": "daily", "mode": "custom_symbols", "symbols": SYMBOLS, **values}
    )
    pipelines = PipelineRepository(repo.db)
    if any(p.name == definition.name for p in pipelines.list()):
        pipeline_id = pipelines.get(definition.name).id
    else:
        pipeline_id = pipelines.create(definition.model_dump(mode="json"), None)
    run_id = repo.enqueue(pipeline_id, "manual", {}, definition.model_dump(mode="json"))
    assert run_id is not None
    return definition, run_id


def recorder(
    fail: Callable[[str, int], Exception | None] = lambda symbol, call: None,
) -> tuple[list[str], Callable[[str], dict]]:
    """A ``work`` function that records its calls and raises what ``fail`` returns."""
    calls: list[str] = []

    def work(symbol: str) -> dict:
        calls.append(symbol)
        error = fail(symbol, calls.count(symbol))
        if error is not None:
            raise error
        return {"rows": 10}

    return calls, work


# --- the happy path and failures ----------------------------------------------------------


def test_a_successful_run_records_steps_counts_and_resources(db_url: str) -> None:
    repo = RunRepository(open_database(db_url))
    definition, run_id = new_run(repo)
    lifecycle = Demo(repo, run_id, definition, worker="test:1")

    outcome = lifecycle.run()

    assert outcome.status == "succeeded" and outcome.error is None
    assert lifecycle.events == ["initialize", "cleanup"]
    run = repo.get(run_id)
    assert (run.status, run.worker, run.symbols_processed, run.signals_generated) == (
        "succeeded",
        "test:1",
        4,
        4,
    )
    assert run.error_count == 0 and run.duration is not None and run.duration >= 0
    assert run.cpu_seconds is not None and run.cpu_seconds >= 0
    assert run.peak_memory_mb is not None and run.peak_memory_mb > 1
    steps = repo.steps(run_id)
    assert [(s.name, s.status) for s in steps] == [
        ("fetch", "succeeded"),
        ("summarise", "succeeded"),
    ]
    assert steps[0].detail == {"symbols": 4, "done": 4, "resumed": 0, "failed": 0}
    assert all(s.duration is not None and s.duration >= 0 for s in steps)
    messages = [line.message for line in repo.logs(run_id)]
    assert messages[0].startswith("run of pipeline daily started (attempt 1, worker test:1")
    assert any(m.startswith("step fetch succeeded in") for m in messages)
    assert repo.checkpoints(run_id) == {}  # a finished run has nothing to resume


def test_an_exception_fails_its_step_and_the_run_and_cleanup_still_runs(
    repo: RunRepository,
) -> None:
    definition, run_id = new_run(repo)
    lifecycle = Demo(repo, run_id, definition, fail_in="summarise")

    outcome = lifecycle.run()

    assert outcome.status == "failed"
    assert outcome.error == "ValueError: no bars to summarise"
    assert lifecycle.events == ["initialize", "cleanup"]
    summarise = repo.steps(run_id)[1]
    assert (summarise.status, summarise.error) == ("failed", "ValueError: no bars to summarise")
    assert repo.get(run_id).error == "ValueError: no bars to summarise"
    # The fetched symbols stay checkpointed for a retry.
    assert "fetch:AAA" in repo.checkpoints(run_id)
    levels = {(line.level, line.message) for line in repo.logs(run_id)}
    assert ("ERROR", "run failed: ValueError: no bars to summarise") in levels


def test_a_failing_initialize_still_cleans_up(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)
    lifecycle = Demo(repo, run_id, definition, fail_in="initialize")

    assert lifecycle.run().status == "failed"
    assert lifecycle.events == ["initialize", "cleanup"]
    assert repo.get(run_id).error == "RuntimeError: cannot open the lake"
    assert repo.steps(run_id) == []


def test_a_finished_run_cannot_run_again(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)
    Demo(repo, run_id, definition).run()
    with pytest.raises(Exception, match="is succeeded — only a queued or running run can run"):
        Demo(repo, run_id, definition).run()


# --- error policies -------------------------------------------------------------------------


def test_skip_records_symbol_errors_and_ends_partial(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="skip")
    calls, work = recorder(lambda s, n: RuntimeError("feed down") if s == "BBB" else None)

    outcome = Demo(repo, run_id, definition, work=work).run()

    assert outcome.status == "partial"
    assert calls == SYMBOLS  # BBB tried once, the others still done
    run = repo.get(run_id)
    assert (run.symbols_processed, run.error_count) == (3, 1)
    fetch = repo.steps(run_id)[0]
    assert fetch.status == "partial"
    assert fetch.detail["errors"] == {"BBB": "RuntimeError: feed down"}
    assert set(repo.checkpoints(run_id)) == {"fetch:AAA", "fetch:CCC", "fetch:DDD", "summarise"}


def test_stop_fails_the_run_at_the_first_error(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="stop")
    calls, work = recorder(lambda s, n: RuntimeError("feed down") if s == "BBB" else None)

    lifecycle = Demo(repo, run_id, definition, work=work)
    outcome = lifecycle.run()

    assert outcome.status == "failed"
    assert outcome.error == "step fetch stopped at BBB: RuntimeError: feed down"
    assert calls == ["AAA", "BBB"]
    assert [(s.name, s.status) for s in repo.steps(run_id)] == [("fetch", "failed")]
    assert lifecycle.events == ["initialize", "cleanup"]


def test_retry_backs_off_then_records_the_symbol_that_keeps_failing(
    repo: RunRepository,
) -> None:
    policy = {"max_attempts": 3, "base_delay": 0.5, "factor": 2, "jitter": 0.2}
    definition, run_id = new_run(repo, error_policy="retry", retry_policy=policy)

    def fail(symbol: str, call: int) -> Exception | None:
        if symbol == "AAA" and call == 1:
            return ConnectionError("reset by peer")
        return TimeoutError("provider timeout") if symbol == "BBB" else None

    calls, work = recorder(fail)
    slept: list[float] = []
    outcome = Demo(
        repo, run_id, definition, work=work, sleep=slept.append, rng=random.Random(7)
    ).run()

    assert calls == ["AAA", "AAA", "BBB", "BBB", "BBB", "CCC", "DDD"]
    expected_rng = random.Random(7)
    retry = RetryPolicy(**policy)
    expected = [next(backoff_delays(retry, expected_rng)), *backoff_delays(retry, expected_rng)]
    assert slept == pytest.approx(expected)
    assert outcome.status == "partial" and outcome.error_count == 1
    assert repo.steps(run_id)[0].detail["errors"] == {"BBB": "TimeoutError: provider timeout"}
    warnings = [line.message for line in repo.logs(run_id) if line.level == "WARNING"]
    assert warnings[0].startswith("fetch AAA: attempt 1 failed (ConnectionError: reset by peer)")


def test_a_run_where_every_symbol_fails_is_failed(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="skip")
    _, work = recorder(lambda s, n: KeyError(s))

    outcome = Demo(repo, run_id, definition, work=work).run()

    assert outcome.status == "failed"
    assert outcome.error == "4 errors and nothing done — first: AAA: KeyError: 'AAA'"


class WithOptionalReport(Demo):
    def execute(self) -> None:
        super().execute()
        with self.step("report", optional=True):
            raise OSError("disk full")


def test_an_optional_step_failing_leaves_the_run_partial(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="skip")

    outcome = WithOptionalReport(repo, run_id, definition).run()

    assert outcome.status == "partial" and outcome.error_count == 1
    assert repo.steps(run_id)[-1].status == "failed"
    assert repo.steps(run_id)[-1].error == "OSError: disk full"


def test_under_stop_an_optional_step_failing_fails_the_run(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="stop")
    assert WithOptionalReport(repo, run_id, definition).run().status == "failed"


# --- resume ---------------------------------------------------------------------------------


def test_a_resumed_run_processes_only_the_symbols_not_checkpointed(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)
    repo.save_checkpoint(run_id, "fetch:AAA", {"rows": 1})
    repo.save_checkpoint(run_id, "fetch:BBB", {"rows": 2})
    calls, work = recorder()

    outcome = Demo(repo, run_id, definition, work=work).run()

    assert calls == ["CCC", "DDD"]
    assert outcome.status == "succeeded" and outcome.symbols_processed == 4
    assert repo.steps(run_id)[0].detail == {"symbols": 4, "done": 4, "resumed": 2, "failed": 0}


def test_a_requeued_run_continues_where_its_last_attempt_stopped(repo: RunRepository) -> None:
    definition, run_id = new_run(repo, error_policy="stop")
    _, broken = recorder(lambda s, n: RuntimeError("feed down") if s == "CCC" else None)
    assert Demo(repo, run_id, definition, work=broken).run().status == "failed"

    assert repo.requeue(run_id)
    calls, work = recorder()
    outcome = Demo(repo, run_id, definition, work=work).run()

    assert calls == ["CCC", "DDD"]
    assert outcome.status == "succeeded"
    run = repo.get(run_id)
    assert run.attempt == 2 and run.error is None
    # The failed step was restarted in place, not duplicated.
    assert [(s.name, s.status) for s in repo.steps(run_id)] == [
        ("fetch", "succeeded"),
        ("summarise", "succeeded"),
    ]


def test_a_new_run_can_resume_from_an_interrupted_one(repo: RunRepository) -> None:
    definition, first = new_run(repo)
    assert Demo(repo, first, definition, fail_in="summarise").run().status == "failed"

    _, second = new_run(repo)
    calls, work = recorder()
    outcome = Demo(repo, second, definition, work=work, resume_from=first).run()

    assert calls == []  # the whole fetch step was done by the first run
    assert outcome.status == "succeeded"
    steps = repo.steps(second)
    assert [(s.name, s.status) for s in steps] == [("fetch", "skipped"), ("summarise", "succeeded")]
    assert steps[0].detail["resumed"] is True


# --- stopping -------------------------------------------------------------------------------


def test_a_shutdown_request_stops_after_the_current_symbol(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)
    shutdown = GracefulShutdown()

    def work(symbol: str) -> dict:
        if symbol == "BBB":
            shutdown.request("SIGTERM received")
        return {}

    lifecycle = Demo(repo, run_id, definition, work=work, shutdown=shutdown)
    outcome = lifecycle.run()

    assert outcome.status == "cancelled"
    assert outcome.error == "cancelled: SIGTERM received"
    assert lifecycle.events == ["initialize", "cleanup"]
    assert set(repo.checkpoints(run_id)) == {"fetch:AAA", "fetch:BBB"}
    fetch = repo.steps(run_id)[0]
    assert fetch.status == "partial" and fetch.detail["interrupted"] is True


def test_cancelling_a_running_run_stops_it_after_the_current_symbol(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)
    calls: list[str] = []

    def work(symbol: str) -> dict:
        calls.append(symbol)
        if symbol == "AAA":
            repo.cancel(run_id)  # what `pipeline cancel` does from another process
            time.sleep(0.5)  # the heartbeat notices meanwhile
        return {}

    lifecycle = Demo(repo, run_id, definition, work=work, heartbeat_interval=0.05)
    outcome = lifecycle.run()

    assert calls == ["AAA"]
    assert outcome.status == "cancelled" and lifecycle.events[-1] == "cleanup"
    assert repo.get(run_id).status == "cancelled"
    assert set(repo.checkpoints(run_id)) == {"fetch:AAA"}


def test_ctrl_c_records_the_run_cancelled_and_propagates(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)

    def work(symbol: str) -> dict:
        if symbol == "CCC":
            raise KeyboardInterrupt
        return {}

    lifecycle = Demo(repo, run_id, definition, work=work)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.run()

    assert lifecycle.events == ["initialize", "cleanup"]
    assert repo.get(run_id).status == "cancelled"
    assert set(repo.checkpoints(run_id)) == {"fetch:AAA", "fetch:BBB"}


def run_slowly(url: str, run_id: str, marker_dir: str) -> None:
    """A child process: runs the pipeline over slow symbols, signals untouched."""
    repo = RunRepository(Database(url))  # a new engine: the parent's pool stays the parent's
    definition = definition_from(repo.get(run_id).config_snapshot)

    class Slow(Demo):
        def cleanup(self) -> None:
            Path(marker_dir, "cleanup-ran").touch()

    def work(symbol: str) -> dict:
        Path(marker_dir, f"started-{symbol}").touch()
        time.sleep(0.4)
        return {"rows": 1}

    outcome = Slow(repo, run_id, definition, work=work).run()
    Path(marker_dir, f"outcome-{outcome.status}").touch()


def test_sigterm_ends_a_real_run_cancelled_after_the_current_symbol(
    repo: RunRepository, sqlite_url: str, tmp_path: Path
) -> None:
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    definition, run_id = new_run(repo, symbols=symbols)
    child = multiprocessing.get_context("fork").Process(
        target=run_slowly, args=(sqlite_url, run_id, str(tmp_path))
    )
    child.start()
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started-BBB").exists():
            assert time.monotonic() < deadline and child.is_alive(), "the run did not start"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGTERM)  # in the middle of BBB
        child.join(timeout=30)
    finally:
        if child.is_alive():
            child.kill()

    assert child.exitcode == 0  # a graceful stop, not a kill
    assert (tmp_path / "outcome-cancelled").exists() and (tmp_path / "cleanup-ran").exists()
    run = repo.get(run_id)
    assert run.status == "cancelled" and run.error == "cancelled: SIGTERM received"
    assert not (tmp_path / "started-CCC").exists()
    # BBB was finished before stopping, and both finished symbols are kept.
    assert set(repo.checkpoints(run_id)) == {"fetch:AAA", "fetch:BBB"}
    assert repo.steps(run_id)[0].status == "partial"

    # The next attempt does only what is left.
    assert repo.requeue(run_id)
    calls, work = recorder()
    assert Demo(repo, run_id, definition, work=work).run().status == "succeeded"
    assert calls == ["CCC", "DDD", "EEE", "FFF"]


def test_warnings_logged_by_code_the_run_calls_land_in_the_run_log(repo: RunRepository) -> None:
    definition, run_id = new_run(repo)

    def work(symbol: str) -> dict:
        if symbol == "BBB":
            logging.getLogger("breadthflow.data.validate").warning("BBB: 3 bad rows dropped")
        logging.getLogger("breadthflow.data.validate").debug("not captured")
        return {}

    Demo(repo, run_id, definition, work=work).run()

    lines = [(line.level, line.step, line.message) for line in repo.logs(run_id)]
    assert ("WARNING", "fetch", "BBB: 3 bad rows dropped") in lines
    assert not any(message == "not captured" for _, _, message in lines)
