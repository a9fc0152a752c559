"""``/api/v1/pipelines`` and ``/api/v1/runs``: definitions, control, run history."""

from __future__ import annotations

from fastapi.testclient import TestClient

from breadthflow.services.context import AppContext
from breadthflow.store.runs import RunRepository


def _create(client: TestClient, writer: dict[str, str], **fields) -> dict:
    response = client.post("/api/v1/pipelines", json={"name": "daily", **fields}, headers=writer)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_then_read_back(client: TestClient, writer: dict[str, str]) -> None:
    created = _create(client, writer, schedule="5m", mode="custom_symbols",
                      symbols=["aapl", "msft"])  # fmt: skip
    assert created["symbols"] == ["AAPL", "MSFT"]
    assert created["next_run_at"] is not None

    listed = client.get("/api/v1/pipelines").json()
    shown = client.get("/api/v1/pipelines/daily").json()

    assert [p["name"] for p in listed] == ["daily"]
    assert shown == created


def test_a_bad_payload_is_422_with_the_field_and_reason(
    client: TestClient, writer: dict[str, str]
) -> None:
    response = client.post("/api/v1/pipelines", json={"name": "Bad Name!"}, headers=writer)
    body = response.json()
    assert response.status_code == 422
    assert body["errors"][0]["field"] == "name"
    assert "lower-case" in body["errors"][0]["reason"]
    assert "'name'" in body["detail"]


def test_an_unknown_field_is_422(client: TestClient, writer: dict[str, str]) -> None:
    response = client.post("/api/v1/pipelines", json={"name": "x", "shedule": "5m"}, headers=writer)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "shedule"


def test_a_bad_schedule_is_422_with_a_one_line_reason(
    client: TestClient, writer: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/pipelines", json={"name": "x", "schedule": "every tuesday"}, headers=writer
    )
    assert response.status_code == 422
    assert "every tuesday" in response.json()["detail"]
    assert "\n" not in response.json()["detail"]


def test_a_duplicate_name_is_refused(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer)
    again = client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    assert again.status_code == 422
    assert "already exists" in again.json()["detail"]


def test_an_unknown_pipeline_is_404_with_a_suggestion(
    client: TestClient, writer: dict[str, str]
) -> None:
    _create(client, writer)
    response = client.get("/api/v1/pipelines/dialy")
    assert response.status_code == 404
    assert "did you mean 'daily'" in response.json()["detail"]


def test_patch_changes_only_the_given_fields(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer, schedule="5m", parameters={"strategy": "sma_cross"})
    response = client.patch("/api/v1/pipelines/daily", json={"schedule": "1h"}, headers=writer)
    assert response.status_code == 200
    assert response.json()["schedule"] == "1h"
    assert response.json()["parameters"] == {"strategy": "sma_cross"}
    empty = client.patch("/api/v1/pipelines/daily", json={}, headers=writer)
    assert empty.status_code == 422


def test_enable_and_disable(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer, schedule="5m")
    off = client.post("/api/v1/pipelines/daily/disable", headers=writer).json()
    on = client.post("/api/v1/pipelines/daily/enable", headers=writer).json()
    assert off["is_active"] is False and off["next_run_at"] is None
    assert on["is_active"] is True and on["next_run_at"] is not None


def test_delete(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer)
    assert client.delete("/api/v1/pipelines/daily", headers=writer).status_code == 204
    assert client.get("/api/v1/pipelines/daily").status_code == 404


def test_run_now_queues_a_run_without_enabling(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer, is_active=False)
    response = client.post("/api/v1/pipelines/daily/run-now", headers=writer)
    run = response.json()
    assert response.status_code == 202
    assert run["status"] == "queued" and run["trigger"] == "api"
    assert run["pipeline_name"] == "daily"
    assert client.get("/api/v1/pipelines/daily").json()["is_active"] is False


def test_start_enables_and_queues_stop_disables_and_cancels(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    _create(client, writer, is_active=False)
    started = client.post("/api/v1/pipelines/daily/start", headers=writer).json()
    run_id = started["run"]["run_id"]
    assert started["pipeline"]["is_active"] is True

    stopped = client.post("/api/v1/pipelines/daily/stop", headers=writer).json()

    assert stopped["pipeline"]["is_active"] is False
    assert stopped["cancelled"] == [run_id]
    assert RunRepository(ctx.db).get(run_id).status == "cancelled"


def test_status_shows_the_last_run(client: TestClient, writer: dict[str, str]) -> None:
    _create(client, writer)
    run = client.post("/api/v1/pipelines/daily/run-now", headers=writer).json()
    status = client.get("/api/v1/pipelines/daily/status").json()
    assert status["runner"]["alive"] is False
    assert status["pipelines"][0]["last_run"] == run["run_id"]


# --- runs -----------------------------------------------------------------------------------


def _runs(ctx: AppContext, client: TestClient, writer: dict[str, str]) -> list[str]:
    """Two pipelines; daily has 3 runs (one succeeded with steps and logs), weekly 1."""
    _create(client, writer)
    client.post("/api/v1/pipelines", json={"name": "weekly"}, headers=writer)
    ids = [client.post(f"/api/v1/pipelines/{name}/run-now", headers=writer).json()["run_id"]
           for name in ("daily", "daily", "daily", "weekly")]  # fmt: skip
    repo = RunRepository(ctx.db)
    claimed = repo.claim_next("test-worker", pipeline_limit=1)
    assert claimed is not None and claimed.run_id == ids[0]
    step = repo.start_step(ids[0], "fetch")
    repo.log(ids[0], "INFO", "fetched 8 symbols", step="fetch")
    repo.log(ids[0], "WARNING", "AAPL had a gap", step="fetch")
    repo.finish_step(step, "succeeded", {"symbols": 8})
    repo.finish(ids[0], "succeeded", symbols_processed=8, signals_generated=12)
    return ids


def test_runs_list_filters_and_paginates(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    ids = _runs(ctx, client, writer)

    everything = client.get("/api/v1/runs").json()
    daily = client.get("/api/v1/runs", params={"pipeline": "daily"}).json()
    done = client.get("/api/v1/runs", params={"status": "succeeded"}).json()
    first = client.get("/api/v1/runs", params={"limit": 2}).json()
    second = client.get("/api/v1/runs", params={"limit": 2, "offset": 2}).json()

    assert everything["total"] == 4
    assert [r["run_id"] for r in everything["items"]] == ids[::-1]  # newest first
    assert daily["total"] == 3 and {r["pipeline_name"] for r in daily["items"]} == {"daily"}
    assert [r["run_id"] for r in done["items"]] == [ids[0]]
    assert first["next_offset"] == 2 and second["next_offset"] is None
    assert [r["run_id"] for r in first["items"] + second["items"]] == ids[::-1]


def test_runs_list_refuses_bad_filters(client: TestClient) -> None:
    assert client.get("/api/v1/runs", params={"status": "exploded"}).status_code == 422
    assert client.get("/api/v1/runs", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/runs", params={"pipeline": "nope"}).status_code == 404


def test_run_detail_has_its_steps_and_logs(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    ids = _runs(ctx, client, writer)

    detail = client.get(f"/api/v1/runs/{ids[0]}").json()
    logs = client.get(f"/api/v1/runs/{ids[0]}/logs").json()
    later = client.get(f"/api/v1/runs/{ids[0]}/logs", params={"after_id": logs[0]["id"]}).json()

    assert detail["status"] == "succeeded" and detail["signals_generated"] == 12
    assert [(s["name"], s["status"], s["detail"]) for s in detail["steps"]] == [
        ("fetch", "succeeded", {"symbols": 8})
    ]
    assert [line["message"] for line in logs] == ["fetched 8 symbols", "AAPL had a gap"]
    assert [line["message"] for line in later] == ["AAPL had a gap"]
    assert client.get("/api/v1/runs/run-nope").status_code == 404
    assert client.get("/api/v1/runs/run-nope/logs").status_code == 404


def test_cancel_a_queued_run(client: TestClient, writer: dict[str, str], ctx: AppContext) -> None:
    ids = _runs(ctx, client, writer)
    response = client.post(f"/api/v1/runs/{ids[1]}/cancel", headers=writer)
    again = client.post(f"/api/v1/runs/{ids[1]}/cancel", headers=writer)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert again.status_code == 422 and "already finished" in again.json()["detail"]
