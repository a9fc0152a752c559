"""Fixtures of the API tests: an app on a fresh home (SQLite by default), tokens, and a
seeded home (sample bars, signals, a backtest, a scan) built once and copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from breadthflow.api.app import create_app
from breadthflow.core.config import get_settings, load_settings
from breadthflow.services.context import AppContext
from breadthflow.services.tokens import create_token
from breadthflow.store.db import close_all

SAMPLE_START, SAMPLE_END = "2009-08-21", "2010-08-20"


@pytest.fixture(autouse=True)
def _no_cached_databases() -> Iterator[None]:
    close_all()
    yield
    close_all()


@pytest.fixture
def ctx(isolated_home: Path) -> AppContext:
    get_settings.cache_clear()
    return AppContext(load_settings())


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx.settings, include_web=False, ctx=ctx)) as test_client:
        yield test_client


def _bearer(ctx: AppContext, name: str, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(ctx, name, scope).token}"}


@pytest.fixture
def writer(ctx: AppContext) -> dict[str, str]:
    """Headers with a write token."""
    return _bearer(ctx, "writer", "write")


@pytest.fixture
def reader(ctx: AppContext) -> dict[str, str]:
    """Headers with a read-only token."""
    return _bearer(ctx, "reader", "read")


@pytest.fixture(scope="session")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with demo_small's sample bars, sma_cross signals, one backtest and one scan
    (built once per session through the services)."""
    from breadthflow.services import backtest, data, scan, signals

    home = tmp_path_factory.mktemp("seeded") / "bfhome"
    seed = AppContext(load_settings(home=home, database_url="", lake_url="", log_json=False))
    data.fetch_bars(
        seed, data.FetchRequest("sample", SAMPLE_START, SAMPLE_END, universe="demo_small")
    )
    signals.generate_signals(
        seed, "sma_cross", "2010-01-04", SAMPLE_END, universe="demo_small",
        params={"fast": "10", "slow": "30"},
    )  # fmt: skip
    study = backtest.prepare_study(
        seed, "sma_cross", "2010-01-04", SAMPLE_END, universe="demo_small",
        params={"fast": "10", "slow": "30"},
    )  # fmt: skip
    backtest.run_backtest_study(seed, study)
    scan.run_scan(
        seed, "close > sma(close, 20)", scan.scan_range(None, None, SAMPLE_END),
        universe="demo_small",
    )  # fmt: skip
    close_all()
    return home


@pytest.fixture
def seeded(seeded_home: Path, isolated_home: Path, ctx: AppContext) -> AppContext:
    """This test's home, a copy of the seeded one."""
    close_all()
    shutil.copytree(seeded_home, isolated_home, dirs_exist_ok=True)
    return ctx
