"""Stored pipeline definitions on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.pipelines.definitions import definition_from
from breadthflow.store.db import open_database
from breadthflow.store.pipelines import PipelineRepository

DUE = dt.datetime(2024, 3, 4, 10, 5, tzinfo=dt.UTC)


@pytest.fixture
def repo(db_url: str) -> PipelineRepository:
    return PipelineRepository(open_database(db_url))


def definition(name: str = "daily", **values) -> dict:
    return definition_from({"name": name, **values}).model_dump(mode="json")


def test_a_definition_reads_back_whole(repo: PipelineRepository) -> None:
    values = definition(mode="custom_symbols", symbols="AAPL,MSFT", schedule="5m",
                        parameters={"lookback_days": 90})  # fmt: skip
    repo.create(values, DUE)

    stored = repo.get("daily")
    assert stored.definition() == values
    assert stored.next_run_at == DUE and stored.id > 0


def test_names_are_unique(repo: PipelineRepository) -> None:
    repo.create(definition(), DUE)
    with pytest.raises(InvalidInputError, match="'daily' already exists"):
        repo.create(definition(), DUE)


def test_update_enable_disable_delete(repo: PipelineRepository) -> None:
    repo.create(definition(), DUE)

    repo.update("daily", definition(schedule="15m"), DUE)
    assert repo.get("daily").schedule == "15m"
    repo.set_active("daily", False, None)
    assert repo.get("daily").is_active is False and repo.get("daily").next_run_at is None
    assert repo.list(active_only=True) == []
    repo.set_active("daily", True, DUE)
    assert [p.name for p in repo.list(active_only=True)] == ["daily"]
    repo.delete("daily")
    assert repo.list() == []


def test_unknown_names_suggest_the_close_one(repo: PipelineRepository) -> None:
    repo.create(definition("nightly"), DUE)
    with pytest.raises(NotFoundError, match="did you mean 'nightly'"):
        repo.get("nightlyy")
