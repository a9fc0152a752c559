"""Reliability with real processes and real storage: a runner killed with SIGKILL in the
middle of a run, and a provider that fails for 30 % of the symbols."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from breadthflow.core.config import Settings, get_settings
from breadthflow.core.errors import ProviderError
from breadthflow.core.models import Timeframe
from breadthflow.data import providers
from breadthflow.data.providers import (
    Provider,
    ProviderBars,
    get_provider,
)
from breadthflow.data.universes import builtin_symbols
from breadthflow.pipelines._process import pid_alive
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.store import close_all
from tests.cli._run import run_cli

pytestmark = pytest.mark.slow


def pipeline(capsys: pytest.CaptureFixture[str], *args: str):
    return run_cli(capsys, "pipeline", *args)


def query(home: Path, sql: str, *params: object) -> list[tuple]:
    """Read the metadata DB with plain SQL, from outside the application."""
    with sqlite3.connect(home / "breadthflow.db", timeout=30) as connection:
        return connection.execute(sql, params).fetchall()


def runner_pid(capsys: pytest.CaptureFixture[str]) -> int | None:
    result = pipeline(capsys, "status", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)["runner"]["pid"]


def wait_for(what: str, check, timeout: float = 120.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- (a) kill -9 in the middle of a run ------------------------------------------------------


def test_a_runner_killed_mid_run_resumes_it_and_duplicates_no_signal(capsys, isolated_home):
    home = isolated_home
    created = pipeline(
        capsys, "create", "killme", "--mode", "custom_symbols", "--universe", "demo_small",
        "--provider", "sample", "--schedule", "10s", "-p", "start=2009-08-21",
        "-p", "end=2010-08-20", "-p", "hl_window=50",
    )  # fmt: skip
    assert created.code == 0, created.err
    assert pipeline(capsys, "start", "--concurrency", "1").code == 0
    try:
        first_pid = runner_pid(capsys)
        assert first_pid is not None

        def running_past_fetch() -> str | None:
            found = query(
                home,
                "SELECT r.run_id FROM pipeline_runs r JOIN run_steps s ON s.run_id = r.run_id "
                "WHERE r.status = 'running' AND s.name IN ('breadth', 'signals', 'backtest')",
            )
            return found[0][0] if found else None

        victim = wait_for("a run past its fetch step", running_past_fetch)
        os.kill(first_pid, signal.SIGKILL)
        wait_for("the runner to die", lambda: not pid_alive(first_pid), timeout=10)
        killed_at = dt.datetime.now(dt.UTC)
        ((status, attempt),) = query(
            home, "SELECT status, attempt FROM pipeline_runs WHERE run_id = ?", victim
        )
        assert (status, attempt) == ("running", 1)  # nobody left to record its end
        done_before = query(home, "SELECT count(*) FROM run_checkpoints WHERE run_id = ?", victim)
        assert done_before[0][0] >= 9  # 8 symbols and the fetch step at least

        restarted = pipeline(capsys, "start", "--concurrency", "1")
        assert restarted.code == 0, restarted.err
        assert runner_pid(capsys) != first_pid

        def victim_finished() -> tuple | None:
            rows = query(home, "SELECT status, attempt FROM pipeline_runs WHERE run_id = ?", victim)
            return rows[0] if rows[0][0] not in ("queued", "running") else None

        assert wait_for("the killed run to finish", victim_finished, every=0.5) == (
            "succeeded",
            2,
        )

        def a_later_run_succeeded() -> list | None:
            return query(
                home,
                "SELECT run_id FROM pipeline_runs WHERE run_id != ? AND trigger = 'schedule' "
                "AND status = 'succeeded'",
                victim,
            )

        later = wait_for("the next scheduled run", a_later_run_succeeded, every=0.5)
    finally:
        stopped = pipeline(capsys, "stop", "--timeout", "60")
    assert stopped.code == 0, stopped.err

    # Resumed from its checkpoints: fetch was not done again.
    logs = [m for (m,) in query(home, "SELECT message FROM run_logs WHERE run_id = ?", victim)]
    assert any("queued again as attempt 2" in m and "its process is gone" in m for m in logs)
    assert any(m.startswith("run of pipeline killme started (attempt 2") and
               "resuming after" in m for m in logs)  # fmt: skip
    steps = dict(query(home, "SELECT name, finished_at FROM run_steps WHERE run_id = ?", victim))
    fetched_at = dt.datetime.fromisoformat(steps["fetch"]).replace(tzinfo=dt.UTC)
    assert fetched_at < killed_at
    assert set(steps) == {"fetch", "breadth", "signals", "backtest"}

    # No signal stored twice — per (symbol, date, strategy) over every run.
    duplicates = query(
        home,
        "SELECT symbol, date, strategy, timeframe, count(*) FROM signals "
        "GROUP BY symbol, date, strategy, timeframe HAVING count(*) > 1",
    )
    assert duplicates == []
    by_run = dict(query(home, "SELECT pipeline_run_id, count(*) FROM signals GROUP BY 1"))
    assert by_run[victim] > 0 and all(by_run.get(run_id, 0) == 0 for (run_id,) in later)

    # Every run that ran to its end recorded its resource use.
    finished = query(
        home,
        "SELECT run_id, cpu_seconds, peak_memory_mb FROM pipeline_runs "
        "WHERE status IN ('succeeded', 'partial', 'failed') AND worker IS NOT NULL",
    )
    assert len(finished) >= 2
    assert all(cpu > 0 and memory > 50 for _, cpu, memory in finished), finished


# --- (b) a provider that fails for 30 % of the symbols -------------------------------------------


class FlakyProvider(Provider):
    """The sample data, but a seeded 30 % of the symbols fail: half of them on every
    attempt, the other half only on their first attempt."""

    name = "flaky-test"
    attempts: ClassVar[collections.Counter[str]] = collections.Counter()
    failing: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Settings, options: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, options)
        self.sample = get_provider("sample", settings)

    def known_symbols(self) -> list[str] | None:
        return self.sample.known_symbols()

    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        self.attempts[symbol] += 1
        how = self.failing.get(symbol)
        if how == "always" or (how == "first" and self.attempts[symbol] == 1):
            raise ProviderError(f"feed timeout for {symbol} (attempt {self.attempts[symbol]})")
        return self.sample.fetch(symbol, timeframe, start, end)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(all symbols, always failing, failing once) — a seeded 30 % split in two. The
    provider is registered for this test only (other tests list the registry)."""
    monkeypatch.setitem(providers._REGISTRY, FlakyProvider.name, FlakyProvider)
    symbols = builtin_symbols("demo_large") or []
    chosen = random.Random(20100506).sample(symbols, round(0.3 * len(symbols)))
    always, once = sorted(chosen[: len(chosen) // 2]), sorted(chosen[len(chosen) // 2 :])
    FlakyProvider.failing = {s: "always" for s in always} | {s: "first" for s in once}
    FlakyProvider.attempts.clear()
    yield symbols, always, once
    FlakyProvider.failing = {}


def test_a_provider_failing_for_30_percent_ends_partial_with_every_error_recorded(
    capsys, flaky, isolated_home
):
    symbols, always, once = flaky
    assert len(always) + len(once) == 12 and len(symbols) == 40
    get_settings.cache_clear()
    ctx = AppContext()
    try:
        pipelines_svc.create_pipeline(
            ctx,
            {
                "name": "flaky", "mode": "custom_symbols", "universe": "demo_large",
                "provider": "flaky-test", "schedule": "1d", "error_policy": "retry",
                "retry_policy": {"max_attempts": 3, "base_delay": 0.01, "jitter": 0},
                "parameters": {"start": "2010-01-04", "end": "2010-08-20", "hl_window": 50,
                               "strategies": ["breadth_composite"]},
            },
        )  # fmt: skip
    finally:
        close_all()

    result = pipeline(capsys, "run", "flaky", "--format", "json")
    assert result.code == 0, result.err
    run = json.loads(result.out)

    assert run["status"] == "partial"
    assert run["error_count"] == len(always)
    assert run["symbols_processed"] == len(symbols) - len(always)
    fetch = next(s for s in run["steps"] if s["name"] == "fetch")
    assert fetch["status"] == "partial"
    assert sorted(fetch["detail"]["errors"]) == always
    assert all(fetch["detail"]["errors"][s] == f"feed timeout for {s} (attempt 3)" for s in always)
    assert [s["status"] for s in run["steps"][1:]] == ["succeeded"] * 3

    # Retries observed: a failing-once symbol took two attempts, an always-failing one three.
    assert {s: FlakyProvider.attempts[s] for s in once} == dict.fromkeys(once, 2)
    assert {s: FlakyProvider.attempts[s] for s in always} == dict.fromkeys(always, 3)
    ok = set(symbols) - set(always) - set(once)
    assert {FlakyProvider.attempts[s] for s in ok} == {1}
    logs = pipeline(capsys, "logs", run["run_id"]).out
    for symbol in once:
        assert f"fetch {symbol}: attempt 1 failed (feed timeout for {symbol} (attempt 1))" in logs
    for symbol in always:
        assert f"fetch {symbol} failed: feed timeout for {symbol} (attempt 3)" in logs

    # The rest of the data is in the lake.
    ctx = AppContext()
    try:
        stored = set(ctx.lake.coverage(Timeframe.D1, symbols)["symbol"].to_list())
        assert stored == set(symbols) - set(always)
        alerts = json.loads(run_cli(capsys, "alerts", "--format", "json").out)
        assert alerts == []  # partial is not failed: no alert
    finally:
        close_all()
