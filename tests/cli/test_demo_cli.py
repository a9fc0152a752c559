"""`breadthflow demo`: the main job on the bundled sample, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from breadthflow.signals import STRATEGIES
from tests.cli._run import assert_one_line_error, run_cli
from tests.conftest import free_port


def test_demo_loads_runs_the_pipeline_and_summarises(capsys):
    result = run_cli(capsys, "demo", "--universe", "demo_medium", "--no-serve", "--format", "json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["fetch"]["symbols_stored"] == 20
    assert report["run"]["status"] == "succeeded"
    assert report["run"]["steps"] == (
        "fetch succeeded, breadth succeeded, signals succeeded, backtest succeeded"
    )
    assert report["breadth_latest"]["date"] == "2010-08-20"
    assert report["breadth_latest"]["advances"] + report["breadth_latest"]["declines"] <= 20
    by_name = {row["strategy"]: row for row in report["signals"]}
    assert set(by_name) <= set(STRATEGIES)
    assert {"breadth_composite", "sma_cross", "rsi_reversion"} <= set(by_name)
    assert all(row["stored"] == row["BUY"] + row["SELL"] + row["HOLD"] for row in by_name.values())
    assert sum(row["stored"] for row in by_name.values()) == report["run"]["signals_new"]
    assert report["backtest"]["backtest_id"] >= 1
    assert report["backtest"]["n_trades"] > 0


def test_demo_twice_stores_no_duplicate_signals(capsys):
    first = run_cli(capsys, "demo", "--universe", "demo_small", "--no-serve", "--format", "json")
    second = run_cli(capsys, "demo", "--universe", "demo_small", "--no-serve", "--format", "json")

    assert first.code == second.code == 0, second.err
    assert json.loads(first.out)["signals"] == json.loads(second.out)["signals"]
    assert json.loads(second.out)["run"]["signals_new"] == 0
    runs = json.loads(run_cli(capsys, "pipeline", "runs", "demo", "--format", "json").out)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]


def test_demo_table_output_names_the_next_steps(capsys):
    result = run_cli(capsys, "demo", "--universe", "demo_small", "--no-serve")

    assert result.code == 0, result.err
    assert "Breadth of demo_small" in result.out and "breadth_composite" in result.out
    assert "Demo pipeline run (succeeded)" in result.out
    assert "breadthflow serve" in result.err


def test_demo_with_an_unknown_universe_is_one_line(capsys):
    assert_one_line_error(run_cli(capsys, "demo", "--universe", "sp5000", "--no-serve"), "sp5000")


@pytest.mark.slow
def test_demo_then_serves_the_dashboard_with_the_pipeline_scheduled(isolated_home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env.update(BREADTHFLOW_HOME=str(isolated_home), BREADTHFLOW_LOG_JSON="false")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "demo", "--universe", "demo_small", "--port",
         str(port), "--interval", "1h"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    url = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            found = re.search(r"open: (http://\S+\?token=\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                pipelines = httpx.get(base + "/api/v1/pipelines", timeout=5).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        items = pipelines["items"] if isinstance(pipelines, dict) else pipelines
        demo = next(p for p in items if p["name"] == "demo")
        assert demo["is_active"] is True
        assert demo["schedule"] == "1h"
        assert httpx.get(url, timeout=10, follow_redirects=True).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Demo pipeline run (succeeded)" in "".join(lines)
