"""The signal store on SQLite and PostgreSQL: replace-on-regenerate, filters, summary."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import sqlalchemy as sa

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import SignalType
from breadthflow.store.db import open_database
from breadthflow.store.signals import SignalFilter, SignalRepository

D = dt.date(2010, 3, 1)


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def row(symbol: str, n: int, kind: str = "BUY", **extra) -> dict:
    return {
        "symbol": symbol,
        "date": day(n),
        "signal_type": kind,
        "confidence": 0.5,
        "strength": 1.0 + n,
        "factors": {"rsi": 25.0 + n},
        **extra,
    }


@pytest.fixture
def repo(db_url: str) -> SignalRepository:
    return SignalRepository(open_database(db_url))


def store(repo: SignalRepository, rows: list[dict], symbols=("A", "B"), run=None, **kw):
    batch = {"strategy": "rsi_reversion", "timeframe": "1d", "start": day(0), "end": day(9)}
    batch.update(kw)
    return repo.replace(rows, symbols=list(symbols), pipeline_run_id=run, **batch)


def test_stored_signals_read_back_with_every_field(repo: SignalRepository) -> None:
    assert store(repo, [row("A", 1), row("B", 2, "SELL")]) == (0, 2)

    newest, older = repo.list()
    assert (newest.symbol, newest.date, newest.signal_type) == ("B", day(2), SignalType.SELL)
    assert older.factors == {"rsi": 26.0} and older.strength == 2.0
    assert older.timeframe == "1d" and older.strategy == "rsi_reversion"
    assert older.pipeline_run_id is None
    assert older.create_time.tzinfo is not None


def test_regenerating_a_batch_replaces_its_rows(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("A", 2), row("B", 3)])

    assert store(repo, [row("A", 1, "SELL")]) == (3, 1)

    assert repo.count() == 1
    assert repo.list()[0].signal_type is SignalType.SELL


def test_replacing_keeps_rows_outside_the_batch(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("C", 2)], symbols=("A", "C"))
    store(repo, [row("A", 1)], run="run-7")
    store(repo, [row("A", 1)], strategy="golden_cross")

    store(repo, [], symbols=("A",))  # symbol A, manual run, rsi_reversion, day 0-9

    left = {(s.symbol, s.strategy, s.pipeline_run_id) for s in repo.list()}
    assert left == {
        ("C", "rsi_reversion", None),
        ("A", "rsi_reversion", "run-7"),
        ("A", "golden_cross", None),
    }


def test_replacing_a_shorter_range_keeps_the_rest(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("A", 8)])

    store(repo, [], end=day(5))

    assert [s.date for s in repo.list()] == [day(8)]


def test_a_row_outside_the_batch_is_refused_and_nothing_changes(repo: SignalRepository) -> None:
    store(repo, [row("A", 1)])

    with pytest.raises(ValueError, match="outside the batch"):
        store(repo, [row("A", 2), row("Z", 3)])

    assert [(s.symbol, s.date) for s in repo.list()] == [("A", day(1))]


def test_a_failed_insert_leaves_the_previous_rows(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("B", 2)])

    with pytest.raises(sa.exc.IntegrityError):  # confidence 2 breaks the CHECK constraint
        store(repo, [row("A", 1), row("B", 2, confidence=2.0)])

    assert repo.count() == 2


def test_non_finite_numbers_are_stored_as_null(repo: SignalRepository) -> None:
    store(repo, [row("A", 1, strength=math.nan, factors={"x": math.inf, "y": [math.nan, 1.0]})])

    (signal,) = repo.list()
    assert signal.strength is None
    assert signal.factors == {"x": None, "y": [None, 1.0]}


def test_filters_combine(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("A", 5, "SELL"), row("B", 5), row("B", 8, "SELL")])
    store(repo, [row("A", 3)], run="nightly")

    def symbols_dates(**where) -> list[tuple[str, int]]:
        found = repo.list(SignalFilter(**where))
        return [(s.symbol, (s.date - D).days) for s in found]

    assert symbols_dates(symbol="A", pipeline_run_id="") == [("A", 5), ("A", 1)]
    assert symbols_dates(signal_type=SignalType.SELL) == [("B", 8), ("A", 5)]
    assert symbols_dates(since=day(4), until=day(6)) == [("A", 5), ("B", 5)]
    assert symbols_dates(pipeline_run_id="nightly") == [("A", 3)]
    assert symbols_dates(strategy="golden_cross") == []
    assert repo.count(SignalFilter(symbol="B")) == 2


def test_pages_are_disjoint_and_ordered(repo: SignalRepository) -> None:
    store(repo, [row(s, n) for s in ("A", "B") for n in range(10)])

    pages = [repo.list(limit=6, offset=o) for o in (0, 6, 12, 18)]

    keys = [(s.date, s.symbol) for page in pages for s in page]
    assert len(keys) == 20 == len(set(keys))
    assert keys == sorted(keys, key=lambda k: (-k[0].toordinal(), k[1]))
    with pytest.raises(InvalidInputError, match="invalid limit 0"):
        repo.list(limit=0)


def test_summary_counts_per_strategy(repo: SignalRepository) -> None:
    store(repo, [row("A", 1), row("A", 2, "SELL"), row("B", 3, "HOLD")])
    store(repo, [row("A", 4, "SELL")], strategy="golden_cross")

    golden, rsi = repo.summary()

    assert (golden.strategy, golden.signals, golden.sell, golden.symbols) == (
        "golden_cross", 1, 1, 1,
    )  # fmt: skip
    assert (rsi.signals, rsi.buy, rsi.sell, rsi.hold, rsi.symbols) == (3, 1, 1, 1, 2)
    assert (rsi.first_date, rsi.last_date) == (day(1), day(3))
    assert rsi.last_created.tzinfo is not None
    assert repo.summary(SignalFilter(symbol="B"))[0].signals == 1
