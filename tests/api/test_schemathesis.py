"""Schemathesis against the API's own OpenAPI document: no generated request gets a 5xx.

Every operation of ``/openapi.json`` is exercised with requests generated from its schema
(valid and invalid), with an admin token so that writes reach their handlers. The app
runs in-process (ASGI) on a throw-away home holding a little real data. Left out: the
routes that start background processes or external fetches (``/execute`` and
``/api/v1/commands/execute`` — their allowlist and parameter models have their own tests
— and a pipeline's ``start``/``stop``, which launch or signal the runner process), and
the server-sent event stream, which never ends by design.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from breadthflow.api.app import create_app
from breadthflow.core.config import load_settings
from breadthflow.services import data as data_svc
from breadthflow.services.context import AppContext
from breadthflow.services.pipelines import create_pipeline
from breadthflow.services.tokens import create_token
from breadthflow.store import close_all

pytestmark = pytest.mark.slow


@pytest.fixture
def fuzz_app(tmp_path: Path):
    """(the app, an admin token) on a home with three symbols and one pipeline."""
    close_all()
    ctx = AppContext(load_settings(home=tmp_path / "home", log_json=False))
    request = data_svc.FetchRequest(
        provider="sample", start="2010-06-01", end="2010-08-20", symbols="AAPL,MSFT,IBM"
    )
    data_svc.fetch_bars(ctx, request)
    create_pipeline(ctx, {"name": "demo", "mode": "custom_symbols", "symbols": "AAPL,MSFT",
                          "schedule": "1d"})  # fmt: skip
    token = create_token(ctx, "fuzz", "admin").token
    yield create_app(ctx.settings, include_web=False, ctx=ctx), token
    close_all()


def test_no_generated_request_gets_a_server_error(fuzz_app) -> None:
    app, token = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(
        path_regex=r"(/execute$|/start$|/stop$|/api/v1/events)"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # the whole API, not an empty document

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def no_server_error(case) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
            )

        no_server_error()
