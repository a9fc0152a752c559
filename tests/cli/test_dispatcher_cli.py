"""``breadthflow dispatcher`` as a real process: a published signal becomes a queued run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli._run import run_cli

CLI = [sys.executable, "-m", "breadthflow"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env.update(BREADTHFLOW_HOME=str(home), BREADTHFLOW_LOG_JSON="false")
    return env


def _queued_signal_runs(home: Path) -> list[dict]:
    engine = sa.create_engine(f"sqlite:///{home / 'breadthflow.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("select trigger_payload from pipeline_runs where trigger = 'signal'")
            ).all()
    finally:
        engine.dispose()
    return [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]


@pytest.mark.slow
def test_dispatcher_process_turns_a_published_signal_into_a_run(
    isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    created = run_cli(
        capsys, "pipeline", "create", "on-apple", "--mode", "custom_symbols", "--symbols",
        "AAPL", "--trigger-mode", "signal",
    )  # fmt: skip
    assert created.code == 0, created.err
    env = _env(isolated_home)
    proc = subprocess.Popen(
        [*CLI, "dispatcher", "--batch-timeout", "0.1", "--consumer", "cli-test"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        published = subprocess.run(
            [*CLI, "events", "publish", "trading-signals",
             '{"tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 85}]}'],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        deadline = time.monotonic() + 60
        runs: list[dict] = []
        while time.monotonic() < deadline and not runs:
            runs = _queued_signal_runs(isolated_home)
            time.sleep(0.2)
        assert len(runs) == 1
        assert (runs[0]["ticker"], runs[0]["bias"], runs[0]["confidence"]) == (
            "AAPL",
            "BULLISH",
            85,
        )
        metrics = isolated_home / "run" / "dispatcher-cli-test.json"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if metrics.exists() and json.loads(metrics.read_text())["enqueued"] == 1:
                break
            time.sleep(0.2)
        assert json.loads(metrics.read_text())["enqueued"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "1 enqueued" in stderr

    status = run_cli(capsys, "dispatcher", "status", "--format", "json")
    assert status.code == 0
    (row,) = json.loads(status.out)
    assert (row["consumer"], row["received"], row["enqueued"]) == ("cli-test", 1, 1)
