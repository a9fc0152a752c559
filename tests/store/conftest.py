"""Fixtures of the metadata-store tests: a fresh, migrated database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from breadthflow.store import Database, close_all, open_database


@pytest.fixture(autouse=True)
def _no_cached_databases() -> Iterator[None]:
    """Each test opens its own engines, and none outlives the test (PostgreSQL drops the
    schema between tests, which must not meet a pooled connection)."""
    close_all()
    yield
    close_all()


@pytest.fixture
def db(db_url: str) -> Database:
    """The metadata DB (SQLite or PostgreSQL), migrated to the newest schema."""
    return open_database(db_url)
