"""The OpenAPI document describes every route, and no route answers junk with a 5xx
(a small stand-in for schemathesis, which is not installed here)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from breadthflow.api.app import create_app
from breadthflow.services.context import AppContext

JUNK = ["1", "x", "-1", "%20", "999999999999999999999", "bf_%00"]


def _paths(client: TestClient) -> dict[str, dict]:
    return client.get("/openapi.json").json()["paths"]


def test_the_document_lists_every_resource(ctx: AppContext) -> None:
    with TestClient(create_app(ctx.settings, ctx=ctx)) as client:  # with the dashboard too
        paths = _paths(client)
    for prefix in ("/health", "/metrics", "/execute", "/api/v1/pipelines", "/api/v1/runs",
                   "/api/v1/signals", "/api/v1/breadth", "/api/v1/backtests", "/api/v1/scans",
                   "/api/v1/data/summary", "/api/v1/universes", "/api/v1/alerts",
                   "/api/v1/commands/execute", "/api/v1/events"):  # fmt: skip
        assert any(p.startswith(prefix) for p in paths), prefix
    assert not any(p.startswith("/ui") for p in paths)


@pytest.mark.parametrize("junk", JUNK)
def test_no_get_route_answers_junk_with_a_5xx(
    seeded: AppContext, client: TestClient, junk: str
) -> None:
    for path in _paths(client):
        if path == "/api/v1/events" or ("{" not in path and junk != "1"):
            continue
        url = re.sub(r"\{[^}]+\}", junk, path)
        response = client.get(url, params={"limit": junk, "start": junk, "end": junk,
                                           "universe": junk, "formula": junk})  # fmt: skip
        assert response.status_code < 500, (url, response.status_code, response.text[:200])
        if response.status_code >= 400:
            assert response.json()["detail"], url


@pytest.mark.parametrize(
    "body",
    [{}, {"name": None}, {"name": "x" * 500}, [], "text", {"name": "ok", "schedule": 5},
     {"name": "ok", "retry_policy": {"max_attempts": -1}}, {"name": "ok", "symbols": [1, 2]}],
)  # fmt: skip
def test_no_write_answers_a_bad_body_with_a_5xx(
    client: TestClient, writer: dict[str, str], body: object
) -> None:
    for path in ("/api/v1/pipelines", "/execute", "/api/v1/scans", "/api/v1/universes"):
        response = client.post(path, json=body, headers=writer)
        assert response.status_code == 422, (path, body, response.text[:200])
        assert response.json()["detail"]
