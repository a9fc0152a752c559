"""Shared fixtures.

Tests that need a server use a real one. When it is missing they skip with the reason
on a laptop, and fail under ``BREADTHFLOW_REQUIRE_SERVICES=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from breadthflow.core.config import get_settings

POSTGRES_URL = os.environ.get(
    "BREADTHFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing-secret"


def services_required() -> bool:
    return os.environ.get("BREADTHFLOW_REQUIRE_SERVICES", "") not in ("", "0", "false")


def missing_service(reason: str) -> None:
    """Skip (laptop) or fail (CI) a test whose server is not available."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own BREADTHFLOW_HOME and no inherited BREADTHFLOW_* settings."""
    for key in list(os.environ):
        if key.startswith("BREADTHFLOW_") and key not in {
            "BREADTHFLOW_REQUIRE_SERVICES",
            "BREADTHFLOW_TEST_POSTGRES_URL",
        }:
            monkeypatch.delenv(key)
    home = tmp_path / "bfhome"
    monkeypatch.setenv("BREADTHFLOW_HOME", str(home))
    monkeypatch.setenv("BREADTHFLOW_LOG_JSON", "false")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


# --- PostgreSQL: one throw-away database per test session -----------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover
        pytest.skip("sqlalchemy missing")
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        admin.dispose()
        missing_service(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}")
    name = f"bf_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose schema is empty at the start of each test."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield postgres_server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test against SQLite and against PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.db'}"
    return request.getfixturevalue("postgres_url")


# --- S3: a real S3-protocol server (moto_server) on loopback ----------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(exe).exists():
        missing_service("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                missing_service(f"moto_server exited with code {proc.returncode}")
            time.sleep(0.1)
    else:
        proc.kill()
        missing_service("moto_server did not start within 30 s")
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket; S3 settings exported as BREADTHFLOW_S3_* variables."""
    import boto3

    bucket = f"bf-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    monkeypatch.setenv("BREADTHFLOW_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BREADTHFLOW_S3_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("BREADTHFLOW_S3_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    get_settings.cache_clear()
    return bucket
