"""End to end: real `breadthflow worker` processes, the Redis on 127.0.0.1:6379, SQLite.

A run enqueued in the metadata DB is forwarded as a Celery task and executed by a worker
process through the same lifecycle as the local pool; duplicate tasks for a run do
nothing; a worker killed with SIGKILL in the middle of a run has the run requeued when a
worker starts again.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from breadthflow.core.config import load_settings
from breadthflow.execution.celery_executor import TASK_NAME, CeleryExecutor
from breadthflow.services import pipelines as svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from breadthflow.store.runs import RunRepository, RunSummary
from tests.conftest import free_port, missing_service

pytestmark = pytest.mark.slow

REDIS = "127.0.0.1:6379"
REDIS_DB = 13
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yahoo"


@pytest.fixture
def executor_url() -> str:
    import redis

    try:
        redis.Redis.from_url(f"redis://{REDIS}/{REDIS_DB}", socket_timeout=2).ping()
    except Exception as exc:
        missing_service(f"Redis not reachable at {REDIS}: {type(exc).__name__}")
    # A queue of its own: tasks of other tests (or left over) never reach this worker.
    queue = f"bf-test-{uuid.uuid4().hex[:8]}"
    return (
        f"celery+redis://{REDIS}/{REDIS_DB}?queue={queue}&visibility_timeout=600&heartbeat=0.5"
        "&stale_after=600"
    )


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """The metadata DB of the runner and the workers: SQLite in the home unless a test
    asks for PostgreSQL (``indirect`` parametrization)."""
    kind = getattr(request, "param", "sqlite")
    return request.getfixturevalue("postgres_url") if kind == "postgresql" else ""


@pytest.fixture
def ctx(
    isolated_home: Path, executor_url: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AppContext]:
    monkeypatch.setenv("BREADTHFLOW_EXECUTOR_URL", executor_url)
    if database:
        monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", database)
    close_all()
    context = AppContext(settings=load_settings())
    yield context
    close_all()


class Workers:
    """`breadthflow worker` subprocesses, each in its own process group."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.home / f"worker-{len(self.started)}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "breadthflow", "worker", "--concurrency", str(concurrency)],
            env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children (its process group) — no cleanup."""
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.kill(process)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("worker-*")))


@pytest.fixture
def workers(isolated_home: Path) -> Iterator[Workers]:
    isolated_home.mkdir(parents=True, exist_ok=True)
    pool = Workers(isolated_home)
    yield pool
    pool.stop_all()


def wait_for(runs: RunRepository, run_id: str, done, timeout: float, why: str) -> RunSummary:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get(run_id)
        if done(run):
            return run
        time.sleep(0.25)
    raise AssertionError(f"{why}: run is {runs.get(run_id)}")


def sample_pipeline(ctx: AppContext, name: str = "quick") -> int:
    return svc.create_pipeline(
        ctx,
        {
            "name": name, "mode": "custom_symbols", "universe": "demo_small",
            "provider": "sample",
            "parameters": {"start": "2010-01-04", "end": "2010-08-20", "hl_window": 50,
                           "strategies": ["zweig_thrust"], "backtest_strategy": "sma_cross"},
        },
    ).id  # fmt: skip


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_a_forwarded_run_succeeds_on_a_worker_and_duplicates_do_nothing(
    ctx: AppContext, workers: Workers
) -> None:
    executor = CeleryExecutor.from_url(ctx.settings.executor_url)
    runs = RunRepository(ctx.db)
    run_id = runs.enqueue(sample_pipeline(ctx), "manual")
    assert run_id is not None

    # The runner's forwarder sends each queued run once.
    assert executor.forward_once(ctx.db) == [run_id]
    assert executor.forward_once(ctx.db) == []
    # A duplicate of the task, delivered at the same time to the second worker process.
    duplicate = executor.app.send_task(
        TASK_NAME, args=[run_id], task_id=f"{run_id}.dup", queue=executor.config.queue
    )
    workers.start(concurrency=2)

    first = executor.app.AsyncResult(f"{run_id}.1").get(timeout=180)
    second = duplicate.get(timeout=180)
    assert sorted([first, second])[1] == "succeeded", workers.output()
    assert sorted([first, second])[0].startswith("skipped"), (first, second)

    done = runs.get(run_id)
    assert done.status == "succeeded" and done.attempt == 1
    assert done.worker is not None and done.worker.endswith("/celery")
    steps = [(s.name, s.status) for s in runs.steps(run_id)]
    assert steps == [("fetch", "succeeded"), ("breadth", "succeeded"),
                     ("signals", "succeeded"), ("backtest", "succeeded")]  # fmt: skip

    # Once finished, another delivery of the same run changes nothing.
    late = executor.app.send_task(
        TASK_NAME, args=[run_id], task_id=f"{run_id}.late", queue=executor.config.queue
    )
    assert late.get(timeout=60) == "skipped: succeeded"
    assert runs.get(run_id) == done
    assert [(s.name, s.status) for s in runs.steps(run_id)] == steps


class _Yahoo(http.server.BaseHTTPRequestHandler):
    """A chart API that hangs (the run stays in its fetch step) until released, then
    answers "Not Found" at once."""

    release = threading.Event()
    requests = threading.Event()

    def do_GET(self) -> None:
        type(self).requests.set()
        type(self).release.wait(timeout=60)
        body = (FIXTURES / "chart_not_found.json").read_bytes()
        try:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client was killed
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_yahoo(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Yahoo]]:
    handler = type("Yahoo", (_Yahoo,), {"release": threading.Event(),
                                        "requests": threading.Event()})  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("BREADTHFLOW_YAHOO_BASE_URL", f"http://127.0.0.1:{server.server_port}")
    yield handler
    handler.release.set()
    server.shutdown()
    server.server_close()


def test_a_worker_killed_mid_run_has_the_run_requeued_after_restart(
    ctx: AppContext,
    workers: Workers,
    hanging_yahoo: type[_Yahoo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor = CeleryExecutor.from_url(ctx.settings.executor_url)
    runs = RunRepository(ctx.db)
    stored = svc.create_pipeline(
        ctx,
        {"name": "slow", "mode": "custom_symbols", "symbols": "AAA,BBB", "provider": "yahoo",
         "error_policy": "skip", "parameters": {"start": "2024-01-02", "end": "2024-02-01"}},
    )  # fmt: skip
    run_id = runs.enqueue(stored.id, "manual")
    assert run_id is not None
    # Workers whose broker hands unacknowledged tasks out again after 2 s, not 10 minutes.
    url = ctx.settings.executor_url.replace("visibility_timeout=600", "visibility_timeout=2")
    monkeypatch.setenv("BREADTHFLOW_EXECUTOR_URL", url)
    first = workers.start(concurrency=1)
    assert executor.forward_once(ctx.db) == [run_id]

    running = wait_for(runs, run_id, lambda r: r.status == "running", 60, "never started")
    assert hanging_yahoo.requests.wait(timeout=30), "the run never reached its fetch step"
    workers.kill(first)  # SIGKILL mid-run: no acknowledgement, no cleanup, no final status
    assert runs.get(run_id).status == "running"

    hanging_yahoo.release.set()
    workers.start(concurrency=1)
    # Redis gives the unacknowledged task to the new worker, which finds the run
    # "running" under a dead process, requeues it as attempt 2 and runs it.
    done = wait_for(runs, run_id, lambda r: r.finished, 120, "not recovered after the restart")
    assert done.attempt == 2, workers.output()
    assert done.worker != running.worker
    assert done.status in {"failed", "partial"}  # every fetch is "Not Found" now
    messages = [line.message for line in runs.logs(run_id)]
    assert any("queued again as attempt 2" in m for m in messages), messages


def test_the_runner_forwards_queued_runs_to_celery_workers(
    ctx: AppContext, workers: Workers
) -> None:
    from breadthflow.pipelines.runner import Runner

    runs = RunRepository(ctx.db)
    run_id = runs.enqueue(sample_pipeline(ctx), "manual")
    assert run_id is not None
    runner = Runner(ctx, concurrency=2, poll=0.2)
    thread = threading.Thread(target=runner.serve, daemon=True)
    thread.start()
    try:
        workers.start(concurrency=1)
        done = wait_for(runs, run_id, lambda r: r.finished, 180, "not executed")
    finally:
        runner.shutdown.request()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert done.status == "succeeded", workers.output()
    # executed by the Celery worker process, not by a thread of the runner
    assert done.worker is not None and done.worker.endswith("/celery")
    assert done.worker.split("/")[0] != f"{runner.worker}"
