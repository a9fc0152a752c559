"""``breadthflow token``, ``breadthflow status`` and ``breadthflow serve`` (a real process)."""

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

from breadthflow.services.context import AppContext
from breadthflow.services.tokens import authenticate
from tests.cli._run import assert_one_line_error, run_cli
from tests.conftest import free_port

# --- token --------------------------------------------------------------------------------


def test_token_create_prints_a_working_token_once(capsys, isolated_home) -> None:
    created = run_cli(capsys, "token", "create", "grafana", "--scope", "write")
    token = created.out.strip()
    listed = run_cli(capsys, "token", "list", "--format", "json")

    assert created.code == 0 and token.startswith("bf_")
    assert "copy it now" in created.err
    rows = json.loads(listed.out)
    assert [(r["name"], r["scope"], r["active"]) for r in rows] == [("grafana", "write", True)]
    assert token not in listed.out and rows[0]["prefix"] == token[:8]
    found = authenticate(AppContext(), token)
    assert found is not None and found.scope == "write"


def test_token_revoke(capsys, isolated_home) -> None:
    token = run_cli(capsys, "token", "create", "ci").out.strip()
    revoked = run_cli(capsys, "token", "revoke", "ci")
    active = json.loads(run_cli(capsys, "token", "list", "--format", "json").out)
    everything = json.loads(run_cli(capsys, "token", "list", "--all", "--format", "json").out)
    again = run_cli(capsys, "token", "revoke", "ci")

    assert revoked.code == 0 and "revoked token 'ci'" in revoked.out
    assert active == [] and everything[0]["revoked_at"] is not None
    assert authenticate(AppContext(), token) is None
    assert_one_line_error(again, "already revoked")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("create", "x", "--scope", "root"), "invalid scope 'root'"),
        (("create", "bad name"), "invalid token name 'bad name'"),
        (("revoke", "nobody"), "unknown token 'nobody'"),
    ],
)
def test_token_mistakes_are_one_line(capsys, isolated_home, args, fragment) -> None:
    assert_one_line_error(run_cli(capsys, "token", *args), fragment)


def test_a_token_name_is_unique(capsys, isolated_home) -> None:
    run_cli(capsys, "token", "create", "ci")
    assert_one_line_error(run_cli(capsys, "token", "create", "ci"), "already exists")


# --- status -------------------------------------------------------------------------------


def test_status_reports_the_same_checks_as_health(capsys, isolated_home) -> None:
    result = run_cli(capsys, "status", "--format", "json")
    report = json.loads(result.out)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["database"] == checks["lake"] == checks["bus"] == "ok"
    # No runner: the report is degraded and the exit code says something is not ok.
    assert checks["runner"] == "degraded" and report["status"] == "degraded"
    assert result.code == 1


def test_status_table_and_a_down_backend(capsys, isolated_home, monkeypatch) -> None:
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", f"redis://127.0.0.1:{free_port()}/0")
    result = run_cli(capsys, "status")
    assert result.code == 1
    assert "overall: down" in result.out
    assert re.search(r"bus\s.*down", result.out)


# --- serve (a real process) -------------------------------------------------------------------


def _serve(home: Path, port: int, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env |= {"BREADTHFLOW_HOME": str(home), "BREADTHFLOW_LOG_JSON": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    while not any(line.startswith("API docs:") for line in lines):
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"serve exited: {process.wait()} {process.stderr.read()}")
        lines.append(line.strip())
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return process, lines
        except httpx.TransportError:
            assert time.monotonic() < deadline, "serve did not answer within 30s"
            time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def _scan_kernels_loaded(base: str, wait: float = 120.0) -> bool:
    """Whether the server reports its scan kernels loaded within ``wait`` seconds (the first
    start after an install compiles them)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        checks = {c["name"]: c for c in httpx.get(f"{base}/health").json()["checks"]}
        if checks["runner"]["info"].get("scan_kernels_loaded"):
            return True
        time.sleep(0.2)
    return False


def test_serve_prints_an_admin_token_once_and_runs_everything(isolated_home) -> None:
    port = free_port()
    process, lines = _serve(isolated_home, port)
    try:
        url = next(line for line in lines if "?token=" in line).removeprefix("open: ")
        token = url.partition("?token=")[2]
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health").json()
        checks = {c["name"]: c for c in health["checks"]}
        created = httpx.post(f"{base}/api/v1/pipelines", json={"name": "x"},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        refused = httpx.post(f"{base}/api/v1/pipelines", json={"name": "y"})
        warm = _scan_kernels_loaded(base)
    finally:
        code = _stop(process)
    assert url.startswith(f"http://127.0.0.1:{port}/?token=bf_")
    assert checks["runner"]["status"] == "ok" and checks["runner"]["info"]["in_process"]
    assert checks["runner"]["info"]["dispatcher_alive"] is True
    assert health["status"] == "ok", health
    assert created.status_code == 201 and refused.status_code == 401
    assert warm  # the scan kernels were loaded at start, before any scan
    assert code == 0
    assert not (isolated_home / "runner.pid").exists()

    again, lines = _serve(
        isolated_home, port, "--no-scheduler", "--no-worker", "--no-dispatcher", "--no-web"
    )
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        _stop(again)
    assert not any("?token=" in line for line in lines)  # the admin token exists already
    assert any("token create" in line for line in lines)
    assert {c["name"]: c["status"] for c in health["checks"]}["runner"] == "degraded"


def test_serve_refuses_a_busy_port_in_one_line(capsys, isolated_home) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(capsys, "serve", "--port", str(port))
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "already in use")


def test_serve_refuses_bad_options(capsys, isolated_home) -> None:
    assert_one_line_error(run_cli(capsys, "serve", "--port", "70000"), "invalid --port 70000")
    assert_one_line_error(run_cli(capsys, "serve", "--concurrency", "0"), "--concurrency 0")
