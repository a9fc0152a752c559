"""The same routes on PostgreSQL: definitions, the run queue, tokens, the audit trail,
health, metrics and events read the same through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from breadthflow.api.app import create_app
from breadthflow.core.config import load_settings
from breadthflow.services import live
from breadthflow.services.context import AppContext
from breadthflow.services.tokens import create_token
from breadthflow.store.runs import RunRepository

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str, isolated_home) -> AppContext:
    return AppContext(load_settings(database_url=postgres_url))


@pytest.fixture
def pg_client(pg: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(pg.settings, include_web=False, ctx=pg)) as client:
        yield client


def test_pipelines_runs_and_audit_on_postgres(pg: AppContext, pg_client: TestClient) -> None:
    writer = {"Authorization": f"Bearer {create_token(pg, 'w', 'write').token}"}
    reader = {"Authorization": f"Bearer {create_token(pg, 'r', 'read').token}"}

    created = pg_client.post("/api/v1/pipelines", json={"name": "daily", "schedule": "5m"},
                             headers=writer)  # fmt: skip
    forbidden = pg_client.post("/api/v1/pipelines", json={"name": "x"}, headers=reader)
    run = pg_client.post("/api/v1/pipelines/daily/run-now", headers=writer).json()
    repo = RunRepository(pg.db)
    repo.start(run["run_id"], "w")
    repo.log(run["run_id"], "INFO", "hello from postgres")
    repo.finish(run["run_id"], "succeeded")
    runs = pg_client.get("/api/v1/runs", params={"pipeline": "daily"}).json()
    logs = pg_client.get(f"/api/v1/runs/{run['run_id']}/logs").json()
    executed = pg_client.post("/execute", json={"command": "pipeline_status", "parameters": {}},
                              headers=writer)  # fmt: skip
    rejected = pg_client.post("/execute", json={"command": "shell", "parameters": {}},
                              headers=writer)  # fmt: skip
    audit = pg_client.get("/api/v1/commands/audit", headers=writer).json()

    assert created.status_code == 201 and forbidden.status_code == 403
    assert runs["total"] == 1 and runs["items"][0]["status"] == "succeeded"
    assert [line["message"] for line in logs] == ["hello from postgres"]
    assert executed.status_code == 200 and rejected.status_code == 422
    assert [(e["command"], e["status"]) for e in audit["items"]] == [
        ("shell", "rejected"), ("pipeline_status", "succeeded"),
    ]  # fmt: skip


def test_health_metrics_and_events_on_postgres(pg: AppContext, pg_client: TestClient) -> None:
    writer = {"Authorization": f"Bearer {create_token(pg, 'w', 'write').token}"}
    pg_client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    cursor = live.open_cursor(pg)
    run = pg_client.post("/api/v1/pipelines/daily/run-now", headers=writer).json()
    RunRepository(pg.db).start(run["run_id"], "w")
    RunRepository(pg.db).finish(run["run_id"], "failed", error="boom")

    health = {c["name"]: c for c in pg_client.get("/health").json()["checks"]}
    families = {f.name: f.samples for f in
                text_string_to_metric_families(pg_client.get("/metrics").text)}  # fmt: skip
    changes = [e.data["status"] for e in live.poll(pg, cursor) if e.type == "run"]

    assert health["database"]["status"] == "ok"
    assert health["database"]["info"]["dialect"] == "postgresql"
    runs = {s.labels["status"]: s.value for s in families["breadthflow_runs"]}
    assert runs["failed"] == 1
    count = [s.value for s in families["breadthflow_run_duration_seconds"]
             if s.name.endswith("_count")]  # fmt: skip
    assert count == [1.0]
    assert changes == ["failed"]
