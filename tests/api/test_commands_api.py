"""``/execute``: the allowlist, typed parameters, service calls, and the audit trail."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from breadthflow.services import commands
from breadthflow.services.context import AppContext
from breadthflow.store.alerts import AlertRepository
from tests.api.conftest import SAMPLE_END

ROUTES = ("/execute", "/api/v1/commands/execute")


def _audit(ctx: AppContext) -> list[sa.Row]:
    with ctx.db.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT * FROM command_audit ORDER BY id")))


@pytest.fixture
def no_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to start a process or a shell fails the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a command tried to start a process")

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)
    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(os, "popen", refuse)


def test_the_catalogue_lists_exactly_the_allowlist(client: TestClient) -> None:
    listed = client.get("/api/v1/commands").json()
    assert [c["name"] for c in listed] == [
        "data_summary", "data_fetch", "signal_generate", "signal_summary", "backtest_run",
        "pipeline_start", "pipeline_stop", "pipeline_status", "pipeline_logs", "scan",
    ]  # fmt: skip
    fetch = next(c for c in listed if c["name"] == "data_fetch")
    assert {"start", "end"} <= set(fetch["parameters"]["required"])


@pytest.mark.parametrize("route", ROUTES)
def test_an_unknown_command_is_refused_and_audited(
    client: TestClient, writer: dict[str, str], ctx: AppContext, route: str
) -> None:
    response = client.post(route, json={"command": "rm -rf /", "parameters": {}}, headers=writer)
    rows = _audit(ctx)
    assert response.status_code == 422
    assert "unknown command 'rm -rf /'" in response.json()["detail"]
    assert [(r.command, r.status, r.actor) for r in rows] == [("rm -rf /", "rejected", "writer")]
    assert rows[0].client == "testclient"


@pytest.mark.parametrize(
    ("command", "parameters", "field"),
    [
        ("pipeline_logs", {"limit": 0}, "parameters.limit"),
        ("pipeline_start", {}, "parameters.name"),
        ("pipeline_start", {"name": "x", "shell": "ls"}, "parameters.shell"),
        ("data_fetch", {"universe": "dow30", "start": "2010-13-01", "end": "2010-02-01"},
         "parameters.start"),
        ("scan", {"formula": "close > 1", "on": "2010-01-04"}, "parameters"),
    ],
)  # fmt: skip
def test_bad_parameters_are_422_with_the_field_and_audited(
    client: TestClient,
    writer: dict[str, str],
    ctx: AppContext,
    command: str,
    parameters: dict,
    field: str,
) -> None:
    response = client.post(
        "/execute", json={"command": command, "parameters": parameters}, headers=writer
    )
    body = response.json()
    assert response.status_code == 422
    assert body["errors"][0]["field"].startswith(field)
    assert body["errors"][0]["reason"]
    assert [(r.command, r.status) for r in _audit(ctx)] == [(command, "rejected")]


def test_a_payload_without_a_command_is_422(client: TestClient, writer: dict[str, str]) -> None:
    response = client.post("/execute", json={"parameters": {}}, headers=writer)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "command"


def test_pipeline_commands_drive_the_pipeline(
    client: TestClient, writer: dict[str, str], ctx: AppContext, no_shell: None
) -> None:
    client.post("/api/v1/pipelines", json={"name": "daily", "is_active": False}, headers=writer)

    def run(command: str, **parameters) -> dict:
        response = client.post("/execute", json={"command": command, "parameters": parameters},
                               headers=writer)  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
        return response.json()["result"]

    started = run("pipeline_start", name="daily")
    status = run("pipeline_status", name="daily")
    logs = run("pipeline_logs", pipeline="daily")
    stopped = run("pipeline_stop", name="daily")

    run_id = started["run"]["run_id"]
    assert started["pipeline"]["is_active"] is True and started["run"]["status"] == "queued"
    assert status["pipelines"][0]["last_run"] == run_id
    assert logs == {"run_id": run_id, "lines": []}
    assert stopped["cancelled"] == [run_id]
    audit = _audit(ctx)
    assert [(r.command, r.status) for r in audit] == [
        ("pipeline_start", "succeeded"), ("pipeline_status", "succeeded"),
        ("pipeline_logs", "succeeded"), ("pipeline_stop", "succeeded"),
    ]  # fmt: skip
    assert all(r.finished_at is not None and r.duration >= 0 for r in audit)


def test_a_failing_command_is_audited_as_failed(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    response = client.post(
        "/execute", json={"command": "pipeline_start", "parameters": {"name": "ghost"}},
        headers=writer,
    )  # fmt: skip
    row = _audit(ctx)[0]
    assert response.status_code == 404
    assert "unknown pipeline 'ghost'" in response.json()["detail"]
    assert (row.command, row.status) == ("pipeline_start", "failed")
    assert "ghost" in row.error


def test_data_and_research_commands_call_the_services(
    seeded: AppContext, client: TestClient, writer: dict[str, str], no_shell: None
) -> None:
    def run(command: str, **parameters) -> dict:
        response = client.post("/api/v1/commands/execute",
                               json={"command": command, "parameters": parameters},
                               headers=writer)  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()["result"]

    summary = run("data_summary")
    fetched = run("data_fetch", provider="sample", symbols=["IBM", "KO"],
                  start="2010-01-04", end="2010-01-29")  # fmt: skip
    generated = run("signal_generate", strategy="rsi_reversion", universe="demo_small",
                    start="2010-03-01", end=SAMPLE_END)  # fmt: skip
    by_strategy = run("signal_summary")
    backtest = run("backtest_run", strategy="sma_cross", universe="demo_small",
                   start="2010-01-04", end=SAMPLE_END, params={"fast": 5, "slow": 20},
                   config={"fees": 0.0}, trades=3)  # fmt: skip
    scanned = run("scan", formula="close > sma(close, 20)", universe="demo_small",
                  start="2010-08-16", end=SAMPLE_END)  # fmt: skip

    assert summary["timeframes"][0]["symbols"] == 8
    assert fetched["symbols_stored"] == 2 and fetched["rows_received"] == 2 * 19
    assert generated["strategy"] == "rsi_reversion" and generated["stored"] >= 0
    assert {s["strategy"] for s in by_strategy["strategies"]} >= {"sma_cross"}
    assert backtest["id"] == 2 and backtest["config"]["fees"] == 0.0
    assert len(backtest["trades"]) <= 3 and "sharpe" in backtest["stats"]
    assert scanned["summary"]["symbols"] == 8
    assert {m["date"] for m in scanned["matches"]} <= {
        "2010-08-16", "2010-08-17", "2010-08-18", "2010-08-19", "2010-08-20",
    }  # fmt: skip
    audit = client.get("/api/v1/commands/audit", headers=writer).json()
    assert audit["total"] == 6
    assert [e["command"] for e in audit["items"]] == [  # newest first
        "scan", "backtest_run", "signal_summary", "signal_generate", "data_fetch", "data_summary",
    ]  # fmt: skip
    assert all(e["status"] == "succeeded" and e["actor"] == "writer" for e in audit["items"])


def test_a_bad_engine_setting_is_refused_before_anything_runs(
    seeded: AppContext, client: TestClient, writer: dict[str, str]
) -> None:
    response = client.post("/execute", json={"command": "backtest_run", "parameters": {
        "strategy": "sma_cross", "universe": "demo_small", "start": "2010-01-04",
        "end": SAMPLE_END, "config": {"fees": 2}}}, headers=writer)  # fmt: skip
    assert response.status_code == 422
    assert "fees" in response.json()["detail"]
    assert client.get("/api/v1/backtests").json()["total"] == 1  # only the seeded one


def test_the_audit_log_needs_a_write_token(client: TestClient, reader: dict[str, str]) -> None:
    assert client.get("/api/v1/commands/audit").status_code == 401
    assert client.get("/api/v1/commands/audit", headers=reader).status_code == 403


def test_large_results_are_audited_as_a_note(ctx: AppContext) -> None:
    huge = {"rows": ["x" * 100] * 1000}
    note = commands._audited_result(huge)
    assert note == {"truncated": True, "bytes": len(json.dumps(huge)), "keys": ["rows"]}


# --- alerts ----------------------------------------------------------------------------------


def test_alerts_list_and_acknowledge(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    repo = AlertRepository(ctx.db)
    first = repo.fire(1, "run_failed", "critical", "run X failed")
    repo.fire(1, "late", "warning", "no run since 09:00")

    open_alerts = client.get("/api/v1/alerts").json()
    acked = client.post(f"/api/v1/alerts/{first.id}/acknowledge", headers=writer).json()
    again = client.post(f"/api/v1/alerts/{first.id}/acknowledge", headers=writer).json()
    still_open = client.get("/api/v1/alerts").json()
    everything = client.get("/api/v1/alerts", params={"include_acknowledged": True}).json()

    assert [a["rule"] for a in open_alerts] == ["late", "run_failed"]
    assert acked["was_open"] is True and acked["alert"]["acknowledged_at"] is not None
    assert again["was_open"] is False
    assert [a["rule"] for a in still_open] == ["late"]
    assert len(everything) == 2
    assert client.post("/api/v1/alerts/999/acknowledge", headers=writer).status_code == 404
