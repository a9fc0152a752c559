"""The ingestion log: one row per fetch, its issues and its failed symbols."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import (
    DataIssue,
    FetchReport,
    IssueKind,
    SymbolFailure,
    Timeframe,
)
from breadthflow.store import Database, IngestionRepository, close_all, open_database
from breadthflow.store.models import IngestionFailure, IngestionIssue

START, END = dt.date(2010, 1, 4), dt.date(2010, 3, 31)


@pytest.fixture
def repo(db: Database) -> IngestionRepository:
    return IngestionRepository(db)


def _report(**fields: object) -> FetchReport:
    values: dict[str, object] = {
        "provider": "sample",
        "timeframe": Timeframe.D1,
        "start": START,
        "end": END,
        "symbols_requested": 3,
    }
    values.update(fields)
    return FetchReport.model_validate(values)


ISSUES = [
    DataIssue(
        symbol="AAPL", date=dt.date(2010, 2, 1), kind=IssueKind.ROW_REJECTED, detail="low > high"
    ),
    DataIssue(
        symbol=None, date=dt.date(2010, 2, 15), kind=IssueKind.MISSING_SESSION, detail="holiday?"
    ),
    DataIssue(symbol="MSFT", date=None, kind=IssueKind.SPLIT_ADJUSTED, detail="2:1", rows=40),
    DataIssue(
        symbol="AAPL", date=dt.date(2010, 3, 1), kind=IssueKind.ROW_REJECTED, detail="nan close"
    ),
]
FAILURES = [
    SymbolFailure(symbol="ZZZZ", error="not found"),
    SymbolFailure(symbol="QQQQ", error="timeout"),
]


def test_start_records_a_running_ingestion_visible_to_other_connections(
    repo: IngestionRepository, db_url: str
) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    close_all()  # as if the fetching process had been killed

    (row,) = IngestionRepository(open_database(db_url)).recent()

    assert row.id == ingestion_id
    assert (row.status, row.provider, row.timeframe) == ("running", "sample", "1d")
    assert (row.start, row.end, row.symbols_requested) == (START, END, 3)
    assert row.finished_at is None
    assert row.started_at.tzinfo is not None


def test_start_refuses_an_unknown_timeframe(repo: IngestionRepository) -> None:
    with pytest.raises(InvalidInputError, match="unknown timeframe '2d'"):
        repo.start("sample", "2d", START, END, 3)


def test_finish_round_trips_counts_issues_and_failures(repo: IngestionRepository) -> None:
    ingestion_id = repo.start("sample", Timeframe.D1, START, END, 5)
    report = _report(
        symbols_requested=5,
        symbols_stored=3,
        rows_received=180,
        rows_inserted=150,
        rows_updated=20,
        rows_unchanged=8,
        issues=ISSUES,
        failures=FAILURES,
        seconds=1.25,
    )

    assert repo.finish(ingestion_id, report) == "partial"

    row = repo.get(ingestion_id)
    assert row.status == "partial"
    assert (row.symbols_stored, row.symbols_failed) == (3, 2)
    assert (row.rows_received, row.rows_inserted, row.rows_updated, row.rows_unchanged) == (
        180,
        150,
        20,
        8,
    )
    assert row.seconds == pytest.approx(1.25)
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.issues == {"missing_session": 1, "row_rejected": 2, "split_adjusted": 40}
    assert repo.issues(ingestion_id) == ISSUES
    assert repo.failures(ingestion_id) == FAILURES


def test_issues_can_be_filtered_by_kind(repo: IngestionRepository) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    repo.finish(ingestion_id, _report(symbols_stored=3, issues=ISSUES))

    rejected = repo.issues(ingestion_id, kind="row_rejected")

    assert [i.detail for i in rejected] == ["low > high", "nan close"]
    assert repo.issues(ingestion_id, kind=IssueKind.MISSING_BARS) == []


def test_an_unknown_issue_kind_is_rejected_with_the_known_ones(repo: IngestionRepository) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    with pytest.raises(InvalidInputError, match="unknown issue kind 'bogus' — expected one of"):
        repo.issues(ingestion_id, kind="bogus")


@pytest.mark.parametrize(
    ("stored", "failures", "status"),
    [
        (3, [], "succeeded"),
        (0, [], "succeeded"),  # nothing to store is not a failure
        (2, FAILURES[:1], "partial"),
        (0, FAILURES, "failed"),
    ],
)
def test_status_is_computed_from_stored_and_failed_symbols(
    repo: IngestionRepository, stored: int, failures: list[SymbolFailure], status: str
) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)

    repo.finish(ingestion_id, _report(symbols_stored=stored, failures=failures))

    row = repo.get(ingestion_id)
    assert row.status == status
    assert (row.error is not None) == (status == "failed")


def test_a_failed_finish_leaves_the_ingestion_unchanged(
    repo: IngestionRepository, db: Database
) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    broken = DataIssue.model_construct(
        symbol="AAPL", date=None, kind=IssueKind.ROW_REJECTED, detail=None, rows=1
    )
    report = _report(
        symbols_stored=3, rows_received=90, issues=[*ISSUES, broken], failures=FAILURES
    )

    with pytest.raises(sa.exc.IntegrityError):
        repo.finish(ingestion_id, report)

    row = repo.get(ingestion_id)
    assert (row.status, row.symbols_stored, row.rows_received, row.finished_at) == (
        "running",
        0,
        0,
        None,
    )
    with db.session() as session:
        for table in (IngestionIssue, IngestionFailure):
            assert session.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def test_finishing_again_replaces_the_previous_outcome(repo: IngestionRepository) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    repo.finish(ingestion_id, _report(symbols_stored=1, issues=ISSUES, failures=FAILURES))

    repo.finish(ingestion_id, _report(symbols_stored=3, issues=ISSUES[:1]))

    assert repo.get(ingestion_id).status == "succeeded"
    assert repo.issues(ingestion_id) == ISSUES[:1]
    assert repo.failures(ingestion_id) == []


def test_fail_marks_a_running_ingestion_failed_with_its_reason(
    repo: IngestionRepository,
) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)

    repo.fail(ingestion_id, "KeyboardInterrupt")

    row = repo.get(ingestion_id)
    assert (row.status, row.error) == ("failed", "KeyboardInterrupt")
    assert row.finished_at is not None and row.seconds is not None and row.seconds >= 0


def test_fail_after_finish_keeps_the_recorded_outcome(repo: IngestionRepository) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    repo.finish(ingestion_id, _report(symbols_stored=3))

    repo.fail(ingestion_id, "KeyboardInterrupt")

    assert repo.get(ingestion_id).status == "succeeded"


def test_unknown_ingestion_ids_are_not_found(repo: IngestionRepository) -> None:
    for call in (
        lambda: repo.get(999),
        lambda: repo.finish(999, _report()),
        lambda: repo.fail(999, "x"),
        lambda: repo.issues(999),
        lambda: repo.failures(999),
    ):
        with pytest.raises(NotFoundError, match="no ingestion with id 999"):
            call()


def test_recent_lists_newest_first_up_to_the_limit(repo: IngestionRepository) -> None:
    ids = [repo.start(f"p{i}", "1d", START, END, 1) for i in range(4)]
    repo.finish(ids[1], _report(symbols_stored=1, issues=ISSUES[:1]))

    recent = repo.recent(limit=3)

    assert [r.id for r in recent] == ids[::-1][:3]
    assert {r.id: r.issues for r in recent}[ids[1]] == {"row_rejected": 1}
    assert recent[0].issues == {}


def test_recent_on_a_fresh_database_is_empty(repo: IngestionRepository) -> None:
    assert repo.recent() == []


def test_recent_refuses_a_non_positive_limit(repo: IngestionRepository) -> None:
    with pytest.raises(InvalidInputError, match="invalid limit 0"):
        repo.recent(limit=0)


def test_deleting_an_ingestion_cascades_to_its_issues_and_failures(
    repo: IngestionRepository, db: Database
) -> None:
    ingestion_id = repo.start("sample", "1d", START, END, 3)
    repo.finish(ingestion_id, _report(symbols_stored=1, issues=ISSUES, failures=FAILURES))

    with db.session() as session:
        session.execute(sa.text("DELETE FROM ingestions WHERE id = :id"), {"id": ingestion_id})

    with db.session() as session:
        for table in (IngestionIssue, IngestionFailure):
            assert session.scalar(sa.select(sa.func.count()).select_from(table)) == 0
