"""Authentication: every write needs a bearer token (401 without, 403 read-only), tokens
are stored hashed, revoked tokens stop working, reads can be locked down too."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from breadthflow.api.app import create_app
from breadthflow.core.config import load_settings
from breadthflow.services.context import AppContext
from breadthflow.services.tokens import authenticate, create_token, list_tokens, revoke_token
from tests.api.conftest import _bearer


def _write_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every non-GET operation of the OpenAPI document, with path parameters filled in."""
    routes = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method in operations:
            if method != "get":
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return sorted(routes)


def test_the_api_has_the_expected_write_routes(client: TestClient) -> None:
    routes = _write_routes(client)
    assert ("POST", "/execute") in routes
    assert ("POST", "/api/v1/commands/execute") in routes
    assert ("DELETE", "/api/v1/pipelines/1") in routes
    assert ("POST", "/api/v1/alerts/1/acknowledge") in routes
    assert len(routes) >= 15


def test_every_write_without_a_token_is_401(client: TestClient) -> None:
    for method, path in _write_routes(client):
        response = client.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["detail"]


def test_every_write_with_a_read_only_token_is_403(
    client: TestClient, reader: dict[str, str]
) -> None:
    for method, path in _write_routes(client):
        response = client.request(method, path, json={}, headers=reader)
        assert response.status_code == 403, (method, path, response.text)
        assert "read-only" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer bf_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "bf_no_scheme", "Bearer x"],
)
def test_a_bad_token_is_401(client: TestClient, header: str) -> None:
    response = client.post("/api/v1/pipelines", json={"name": "x"},
                           headers={"Authorization": header})  # fmt: skip
    assert response.status_code == 401
    assert response.json()["detail"]


def test_a_bad_token_is_refused_on_reads_too(client: TestClient) -> None:
    response = client.get("/api/v1/pipelines", headers={"Authorization": "Bearer bf_wrong"})
    assert response.status_code == 401


def test_a_write_token_may_write(client: TestClient, writer: dict[str, str]) -> None:
    response = client.post("/api/v1/pipelines", json={"name": "daily"}, headers=writer)
    assert response.status_code == 201, response.text


def test_an_admin_token_may_write(client: TestClient, ctx: AppContext) -> None:
    response = client.post(
        "/api/v1/pipelines", json={"name": "daily"}, headers=_bearer(ctx, "root", "admin")
    )
    assert response.status_code == 201


def test_a_revoked_token_is_refused(client: TestClient, ctx: AppContext) -> None:
    new = create_token(ctx, "ci", "write")
    headers = {"Authorization": f"Bearer {new.token}"}
    assert client.post("/api/v1/pipelines", json={"name": "a"}, headers=headers).status_code == 201
    revoke_token(ctx, "ci")
    assert client.post("/api/v1/pipelines", json={"name": "b"}, headers=headers).status_code == 401


def test_tokens_are_stored_as_sha256_only(ctx: AppContext) -> None:
    new = create_token(ctx, "grafana", "read")
    assert new.token.startswith("bf_") and len(new.token) >= 40
    with ctx.db.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash, prefix FROM api_tokens")).one()
        dump = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM api_tokens"))
                        for v in row)  # fmt: skip
    assert stored.token_hash == hashlib.sha256(new.token.encode()).hexdigest()
    assert new.token not in dump
    assert stored.prefix == new.token[:8]


def test_using_a_token_records_when(ctx: AppContext) -> None:
    new = create_token(ctx, "grafana", "read")
    assert new.info.last_used_at is None
    found = authenticate(ctx, new.token)
    assert found is not None and found.name == "grafana"
    assert authenticate(ctx, new.token + "x") is None
    assert list_tokens(ctx)[0].last_used_at is not None


def test_reads_can_require_a_token(isolated_home) -> None:
    settings = load_settings(api_read_requires_token=True)
    ctx = AppContext(settings)
    with TestClient(create_app(settings, include_web=False, ctx=ctx)) as client:
        assert client.get("/api/v1/pipelines").status_code == 401
        assert client.get("/api/v1/pipelines", headers=_bearer(ctx, "r", "read")).status_code == 200
        # /health stays open for load balancers and probes.
        assert client.get("/health").status_code in (200, 503)


def test_no_cors_headers_unless_origins_are_configured(client: TestClient) -> None:
    response = client.options(
        "/api/v1/pipelines",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_only_the_listed_origins(isolated_home) -> None:
    settings = load_settings(api_cors_origins="http://localhost:3000")
    with TestClient(create_app(settings, include_web=False)) as client:
        ok = client.get("/api/v1/pipelines", headers={"Origin": "http://localhost:3000"})
        other = client.get("/api/v1/pipelines", headers={"Origin": "http://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-origin" not in other.headers


def test_a_wildcard_cors_origin_is_refused(isolated_home) -> None:
    from breadthflow.core.errors import ConfigError

    with pytest.raises(ConfigError, match="wildcard"):
        load_settings(api_cors_origins="http://a.example,*")
