"""The background runner for real: `pipeline start` → scheduled runs → `pipeline stop`."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.cli._run import run_cli


def pipeline(capsys, *args: str):
    return run_cli(capsys, "pipeline", *args)


def status(capsys) -> dict:
    result = pipeline(capsys, "status", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def runs(capsys) -> list[dict]:
    result = pipeline(capsys, "runs", "--limit", "100", "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.mark.slow
def test_the_runner_runs_a_pipeline_on_schedule_until_stopped(capsys, isolated_home):
    created = pipeline(
        capsys, "create", "quick", "--mode", "custom_symbols", "--universe", "demo_small",
        "--provider", "sample", "--schedule", "3s", "-p", "start=2010-01-04",
        "-p", "end=2010-08-20", "-p", "hl_window=50", "-p", 'strategies=["zweig_thrust"]',
        "-p", "backtest_strategy=sma_cross",
    )  # fmt: skip
    assert created.code == 0, created.err

    started = pipeline(capsys, "start")
    try:
        assert started.code == 0, started.err
        state = status(capsys)["runner"]
        assert state["alive"] is True and state["pid"] != os.getpid()
        second = pipeline(capsys, "start")
        assert second.code != 0 and "already running" in second.err

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            finished = [r for r in runs(capsys) if r["status"] == "succeeded"]
            if len(finished) >= 2:
                break
            time.sleep(1)
        assert len(finished) >= 2, runs(capsys)
    finally:
        stopped = pipeline(capsys, "stop", "--timeout", "60")
    assert stopped.code == 0, stopped.err
    assert "stopped" in stopped.out
    assert status(capsys)["runner"] == {"pid": None, "alive": False}

    every = runs(capsys)
    assert all(r["trigger"] == "schedule" for r in every)
    assert {r["status"] for r in every} <= {"succeeded", "cancelled", "queued"}
    starts = [r["start"] for r in every if r["start"]]
    assert len(starts) == len(set(starts))  # one run per slot
    latest = finished[0]["run_id"]
    logs = pipeline(capsys, "logs", latest)
    assert "step backtest succeeded" in logs.out
    assert (isolated_home / "logs" / "runner.log").exists()
