"""Executor selection by URL and the Celery URL's options."""

from __future__ import annotations

import pytest

from breadthflow.core.errors import ConfigError
from breadthflow.execution import open_executor
from breadthflow.execution.celery_executor import CeleryConfig, CeleryExecutor
from breadthflow.execution.local import LocalExecutor
from tests.cli._run import assert_one_line_error, run_cli


def test_local_is_the_in_process_pool() -> None:
    executor = open_executor("local")
    assert isinstance(executor, LocalExecutor)
    assert executor.in_process and executor.submit("run-000000000000") is False


def test_celery_url_selects_the_celery_executor_with_its_broker() -> None:
    executor = open_executor("celery+redis://:s3cret@redis.internal:6380/2?queue=runs")
    assert isinstance(executor, CeleryExecutor) and not executor.in_process
    assert executor.config.broker_url == "redis://:s3cret@redis.internal:6380/2"
    assert executor.config.queue == "runs"
    assert "s3cret" not in executor.describe()


def test_celery_url_options_and_defaults() -> None:
    config = CeleryConfig.parse(
        "celery+rediss://h:6379?visibility_timeout=60&max_attempts=1&heartbeat=0.5"
    )
    assert config.broker_url == "rediss://h:6379/0"
    assert (config.visibility_timeout, config.max_attempts, config.heartbeat) == (60, 1, 0.5)
    assert (config.resubmit_after, config.stale_after, config.pipeline_limit) == (300, 120, 1)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("rabbit://h", "unknown executor 'rabbit://h'"),
        ("celery+redis:///0", "no host"),
        ("celery+redis://h:6379/zero", "Redis database 'zero' is not a number"),
        ("celery+redis://h:99999/0", "invalid executor URL"),
        ("celery+redis://h/0?max_attempts=0", "invalid max_attempts '0'"),
        ("celery+redis://h/0?heartbeat=fast", "invalid heartbeat 'fast'"),
        ("celery+redis://h/0?queue=a%20b", "invalid queue 'a b'"),
        ("celery+redis://h/0?speed=9", "unknown option 'speed'"),
        ("local://x", "the local executor is just 'local'"),
    ],
)
def test_a_bad_executor_url_is_one_clear_error(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_executor(url)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_worker_command_refuses_the_local_executor(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "worker")
    assert_one_line_error(result, "needs a Celery executor", "BREADTHFLOW_EXECUTOR_URL")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--concurrency", "0"], "invalid concurrency 0"),
        (["--pool", "gevent"], "unknown pool 'gevent'"),
        (["--queues", "ok,bad queue"], "invalid queue 'bad queue'"),
    ],
)
def test_worker_command_checks_its_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args, fragment
) -> None:
    monkeypatch.setenv("BREADTHFLOW_EXECUTOR_URL", "celery+redis://127.0.0.1:6379/0")
    assert_one_line_error(run_cli(capsys, "worker", *args), fragment)
