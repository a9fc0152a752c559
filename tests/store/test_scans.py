"""The scan log on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store.db import open_database
from breadthflow.store.scans import ScanRepository

A, B = dt.date(2010, 1, 4), dt.date(2010, 8, 20)


@pytest.fixture
def repo(db_url: str) -> ScanRepository:
    return ScanRepository(open_database(db_url))


def start(repo: ScanRepository, formula: str = "close > sma(close, 50)") -> int:
    return repo.start(formula, "dow30", 30, A, B, {"latest": False, "limit": None})


def test_a_started_scan_is_running(repo: ScanRepository) -> None:
    scan = repo.get(start(repo))
    assert (scan.status, scan.matches, scan.finished_at) == ("running", 0, None)
    assert (scan.universe, scan.symbols, scan.start, scan.end) == ("dow30", 30, A, B)
    assert scan.parameters == {"latest": False, "limit": None}


def test_finish_is_partial_when_symbols_failed(repo: ScanRepository) -> None:
    clean, failing = start(repo), start(repo)

    assert repo.finish(clean, 120, 14, 0, "results/scans/1") == "succeeded"
    assert repo.finish(failing, 80, 9, 2, "results/scans/2") == "partial"

    done = repo.get(clean)
    assert (done.matches, done.symbols_matched, done.errors) == (120, 14, 0)
    assert done.artifacts == "results/scans/1" and done.seconds is not None


def test_fail_does_not_overwrite_a_finished_scan(repo: ScanRepository) -> None:
    failed, finished = start(repo), start(repo)
    repo.finish(finished, 1, 1, 0, None)

    repo.fail(failed, "lake unreachable")
    repo.fail(finished, "late")

    assert repo.get(failed).status == "failed" and repo.get(failed).error == "lake unreachable"
    assert repo.get(finished).status == "succeeded"


def test_list_is_newest_first(repo: ScanRepository) -> None:
    ids = [start(repo, f"close > {n}") for n in range(3)]
    assert [s.id for s in repo.list()] == ids[::-1]
    assert [s.formula for s in repo.list(limit=1, offset=2)] == ["close > 0"]
    assert repo.count() == 3


def test_unknown_id_and_bad_paging_are_user_errors(repo: ScanRepository) -> None:
    with pytest.raises(NotFoundError, match="no scan with id 7"):
        repo.get(7)
    with pytest.raises(InvalidInputError, match="invalid offset -1"):
        repo.list(offset=-1)
