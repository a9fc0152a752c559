"""The backtest log on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.store.backtests import BacktestRepository
from breadthflow.store.db import open_database

A, B = dt.date(2010, 1, 4), dt.date(2010, 8, 20)


@pytest.fixture
def repo(db_url: str) -> BacktestRepository:
    return BacktestRepository(open_database(db_url))


def start(repo: BacktestRepository, strategy: str = "sma_cross", kind: str = "run") -> int:
    return repo.start(kind, strategy, {"fast": 10, "slow": 30}, "dow30", ["AAPL", "MSFT"], A, B,
                      {"cash": 10_000.0, "fees": 0.001})  # fmt: skip


def test_a_started_run_is_visible_as_running(repo: BacktestRepository) -> None:
    run = start(repo)

    shown = repo.get(run)
    assert (shown.status, shown.stats, shown.finished_at) == ("running", None, None)
    assert shown.params == {"fast": 10, "slow": 30} and shown.symbols == ["AAPL", "MSFT"]
    assert (shown.start, shown.end) == (A, B) and shown.config["fees"] == 0.001


def test_finish_records_stats_and_artifacts(repo: BacktestRepository) -> None:
    run = start(repo)

    repo.finish(run, {"sharpe": 1.25, "calmar": math.inf, "start": A}, artifacts="backtests/1")

    shown = repo.get(run)
    assert shown.status == "succeeded" and shown.artifacts == "backtests/1"
    assert shown.stats == {"sharpe": 1.25, "calmar": None, "start": "2010-01-04"}
    assert shown.seconds is not None and shown.seconds >= 0


def test_fail_keeps_a_finished_outcome(repo: BacktestRepository) -> None:
    failed, finished = start(repo), start(repo)
    repo.finish(finished, {"sharpe": 1.0})

    repo.fail(failed, "out of memory")
    repo.fail(finished, "late error")

    assert (repo.get(failed).status, repo.get(failed).error) == ("failed", "out of memory")
    assert repo.get(finished).status == "succeeded" and repo.get(finished).error is None


def test_list_is_newest_first_and_filters(repo: BacktestRepository) -> None:
    ids = [start(repo), start(repo, "rsi_reversion"), start(repo, kind="optimize")]

    assert [b.id for b in repo.list()] == ids[::-1]
    assert [b.id for b in repo.list(strategy="rsi_reversion")] == [ids[1]]
    assert [b.id for b in repo.list(kind="optimize")] == [ids[2]]
    assert [b.id for b in repo.list(limit=1, offset=1)] == [ids[1]]
    assert repo.count() == 3 and repo.count(kind="run") == 2


def test_unknown_id_and_bad_paging_are_user_errors(repo: BacktestRepository) -> None:
    with pytest.raises(NotFoundError, match="no backtest with id 99"):
        repo.get(99)
    with pytest.raises(InvalidInputError, match="invalid limit 0"):
        repo.list(limit=0)
