"""``/health`` checks each backend for real; ``/metrics`` reports runs, durations,
signals and HTTP latency in the Prometheus format."""

from __future__ import annotations

import datetime as dt
import json
import socket

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from breadthflow.api.app import create_app
from breadthflow.core.config import load_settings
from breadthflow.services.context import AppContext
from breadthflow.services.health import InProcess, check_health
from breadthflow.store.runs import RunRepository
from tests.conftest import free_port, missing_service


def _checks(body: dict) -> dict[str, dict]:
    return {c["name"]: c for c in body["checks"]}


def _client(**settings) -> TestClient:
    chosen = load_settings(**settings)
    return TestClient(create_app(chosen, include_web=False))


def test_health_of_the_embedded_setup(client: TestClient) -> None:
    response = client.get("/health")
    checks = _checks(response.json())
    assert response.status_code == 200
    assert [c for c in checks] == [
        "database", "lake", "bus", "executor", "runner", "workers", "dispatcher",
    ]  # fmt: skip
    assert checks["dispatcher"]["status"] == "ok"  # no signal pipeline needs one
    assert checks["dispatcher"]["info"] == {"running": 0}
    assert checks["database"]["status"] == "ok" and checks["database"]["info"]["revision"]
    assert checks["lake"]["status"] == "ok"
    assert checks["bus"]["info"]["kind"] == "embedded"
    # No scheduler/worker runs anywhere: the API works, runs would not progress.
    assert checks["runner"]["status"] == "degraded"
    assert response.json()["status"] == "degraded"


def test_health_sees_in_process_workers(ctx: AppContext) -> None:
    healthy = check_health(ctx, InProcess(True, True, 2, 2))
    dead = check_health(ctx, InProcess(True, True, 2, 0))
    assert healthy.check("runner").status == "ok"
    assert "2/2 workers" in healthy.check("runner").detail
    assert healthy.status == "ok"
    assert dead.check("runner").status == "degraded"
    assert "stopped" in dead.check("runner").detail


def test_health_reports_the_dispatchers_counters_or_that_one_is_missing(ctx: AppContext) -> None:
    from breadthflow.bus import TRADING_SIGNALS, open_bus
    from breadthflow.services.pipelines import create_pipeline
    from breadthflow.services.triggers import write_metrics
    from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig
    from breadthflow.triggers.index import TriggerSignal

    create_pipeline(ctx, {"name": "on-aapl", "trigger_mode": "signal", "schedule": None,
                          "scanner_tickers": ["AAPL"]})  # fmt: skip
    missing = check_health(ctx).check("dispatcher")
    assert missing.status == "degraded" and "on-aapl" in missing.detail

    bus = open_bus("sqlite", ctx.settings, ctx.db)
    dispatcher = Dispatcher(bus, ctx.db, DispatcherConfig(topic=TRADING_SIGNALS), consumer="h1")
    dispatcher.refresh_index(force=True)
    dispatcher.handle_signals(
        [TriggerSignal("AAPL", "BULLISH", 80), TriggerSignal("X", "BEARISH", 10)]
    )
    write_metrics(ctx, dispatcher)

    found = check_health(ctx).check("dispatcher")
    assert found.status == "ok" and "h1" in found.detail
    assert (found.info["running"], found.info["received"], found.info["enqueued"]) == (1, 2, 1)
    assert found.info["by_signal"] == {
        "BULLISH": {"received": 1, "enqueued": 1},
        "BEARISH": {"received": 1, "enqueued": 0},
    }


def test_an_unwritable_lake_is_down_and_503(isolated_home, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake should be")
    with _client(lake_url=(blocker / "lake").as_uri()) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert _checks(response.json())["lake"]["status"] == "down"


def test_an_unreachable_database_is_down(isolated_home) -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    with _client(database_url=url) as client:
        response = client.get("/health")
    checks = _checks(response.json())
    assert response.status_code == 503
    assert checks["database"]["status"] == "down"
    assert "cannot connect" in checks["database"]["detail"]


def _require(port: int, name: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        missing_service(f"{name} not reachable on 127.0.0.1:{port}")


def test_a_redis_bus_answers_ping(isolated_home) -> None:
    _require(6379, "Redis")
    with _client(bus_url="redis://127.0.0.1:6379/0") as client:
        bus = _checks(client.get("/health").json())["bus"]
    assert bus["status"] == "ok" and bus["info"]["server"] == "redis"


def test_a_nats_bus_greets(isolated_home) -> None:
    _require(4222, "NATS")
    with _client(bus_url="nats://127.0.0.1:4222") as client:
        bus = _checks(client.get("/health").json())["bus"]
    assert bus["status"] == "ok" and bus["info"]["server"] == "nats"


@pytest.mark.parametrize("scheme", ["redis", "nats", "kafka"])
def test_a_bus_nobody_listens_on_is_down(isolated_home, scheme: str) -> None:
    with _client(bus_url=f"{scheme}://127.0.0.1:{free_port()}") as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert _checks(response.json())["bus"]["status"] == "down"


def test_a_redis_port_is_not_mistaken_for_nats(isolated_home) -> None:
    _require(6379, "Redis")
    with _client(bus_url="nats://127.0.0.1:6379") as client:
        bus = _checks(client.get("/health").json())["bus"]
    assert bus["status"] == "down"


def test_a_celery_executor_needs_its_broker(isolated_home) -> None:
    _require(6379, "Redis")
    with _client(executor_url="celery+redis://127.0.0.1:6379/0") as client:
        ok = _checks(client.get("/health").json())["executor"]
    with _client(executor_url=f"celery+redis://127.0.0.1:{free_port()}/0") as client:
        down = _checks(client.get("/health").json())["executor"]
    assert ok["status"] == "ok" and down["status"] == "down"


def test_old_queued_runs_degrade_the_workers_check(ctx: AppContext, client, writer) -> None:
    client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    client.post("/api/v1/pipelines/daily/run-now", headers=writer)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    with ctx.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE pipeline_runs SET queued_at = :t"),
                     {"t": old.replace(tzinfo=None)})  # fmt: skip
    workers = check_health(ctx).check("workers")
    assert workers.status == "degraded"
    assert "the oldest for 1800s" in workers.detail


# --- metrics ---------------------------------------------------------------------------------


def _metrics(client: TestClient) -> dict[str, list]:
    text = client.get("/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_count_runs_durations_and_signals(
    client: TestClient, writer: dict[str, str], ctx: AppContext
) -> None:
    client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    repo = RunRepository(ctx.db)
    ids = [client.post("/api/v1/pipelines/daily/run-now", headers=writer).json()["run_id"]
           for _ in range(3)]  # fmt: skip
    for run_id, seconds in zip(ids[:2], (3.0, 45.0), strict=True):
        repo.start(run_id, "test-worker")
        repo.finish(run_id, "succeeded", signals_generated=5)
        with ctx.db.engine.begin() as conn:  # durations we can assert buckets on
            conn.execute(sa.text("UPDATE pipeline_runs SET duration = :d WHERE run_id = :r"),
                         {"d": seconds, "r": run_id})  # fmt: skip

    metrics = _metrics(client)

    runs = {s.labels["status"]: s.value for s in metrics["breadthflow_runs"]}
    assert runs["succeeded"] == 2 and runs["queued"] == 1 and runs["failed"] == 0
    buckets = {s.labels["le"]: s.value for s in metrics["breadthflow_run_duration_seconds"]
               if s.name.endswith("_bucket")}  # fmt: skip
    assert buckets["1.0"] == 0 and buckets["5.0"] == 1 and buckets["60.0"] == 2
    assert buckets["+Inf"] == 2
    total = [s.value for s in metrics["breadthflow_run_duration_seconds"]
             if s.name.endswith("_sum")]  # fmt: skip
    assert total == [48.0]
    assert metrics["breadthflow_signals_generated"][0].value == 10
    assert metrics["breadthflow_runs_queued_oldest_seconds"][0].value >= 0


def test_metrics_time_http_requests_by_route_template(
    client: TestClient, writer: dict[str, str]
) -> None:
    client.get("/api/v1/runs/run-abc")
    client.get("/api/v1/runs/run-def")
    client.get("/no/such/path")
    samples = _metrics(client)["breadthflow_http_request_duration_seconds"]
    counts = {(s.labels["route"], s.labels["status"]): s.value for s in samples
              if s.name.endswith("_count")}  # fmt: skip
    assert counts[("/api/v1/runs/{run_id}", "404")] == 2
    assert counts[("unmatched", "404")] == 1
    assert not any("run-abc" in route for route, _ in counts)


def test_metrics_include_dispatcher_snapshots(client: TestClient, ctx: AppContext) -> None:
    folder = ctx.settings.home / "run"
    folder.mkdir(parents=True, exist_ok=True)
    snapshot = {
        "consumer": "d1", "updated_at": dt.datetime.now(dt.UTC).isoformat(), "received": 40,
        "signals": 38, "matched": 12, "enqueued": 9, "skipped": 3, "invalid": 2, "batches": 4,
        "db_queries": 4, "index_refreshes": 1, "bus_errors": 0, "consumer_lag": 7,
        "batch_latency_p50": 0.002, "batch_latency_p99": 0.01,
        "dispatch_latency_p50": 0.05, "dispatch_latency_p99": None,
    }  # fmt: skip
    (folder / "dispatcher-d1.json").write_text(json.dumps(snapshot))

    metrics = _metrics(client)

    def value(name: str, **labels: str) -> float:
        return next(s.value for s in metrics[name] if s.labels == labels)

    assert value("breadthflow_dispatcher_up", consumer="d1") == 1
    assert value("breadthflow_dispatcher_enqueued", consumer="d1") == 9
    assert value("breadthflow_dispatcher_skipped", consumer="d1") == 3
    assert value("breadthflow_dispatcher_consumer_lag", consumer="d1") == 7
    assert value("breadthflow_dispatcher_dispatch_latency_seconds", consumer="d1",
                 quantile="0.5") == 0.05  # fmt: skip
    assert not [s for s in metrics["breadthflow_dispatcher_dispatch_latency_seconds"]
                if s.labels["quantile"] == "0.99"]  # fmt: skip


def test_metrics_include_the_bus_consumer_lag(client: TestClient, ctx: AppContext) -> None:
    from breadthflow.services.events import bus_session, publish

    publish(ctx, "backtest-results", [json.dumps({"backtest": n}) for n in (1, 2, 3)])
    with bus_session(ctx) as bus:
        taken = bus.consume("backtest-results", "api-test", "c1", max_messages=1, timeout=0)
        bus.ack("backtest-results", "api-test", taken)

    lag = {(s.labels["topic"], s.labels["group"]): s.value
           for s in _metrics(client)["breadthflow_consumer_lag"]}  # fmt: skip
    assert len(taken) == 1
    assert lag[("backtest-results", "api-test")] == 2


def test_an_unreachable_bus_does_not_hold_up_a_scrape(isolated_home) -> None:
    import time

    with _client(bus_url=f"kafka://127.0.0.1:{free_port()}") as client:
        began = time.monotonic()
        response = client.get("/metrics")
        took = time.monotonic() - began
    assert response.status_code == 200
    assert "breadthflow_runs{" in response.text
    assert took < 10
