"""User universes stored in the metadata DB."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from breadthflow.core.errors import InvalidInputError
from breadthflow.store import Database, UniverseRepository
from breadthflow.store.models import UniverseSymbol


@pytest.fixture
def repo(db: Database) -> UniverseRepository:
    return UniverseRepository(db)


def _symbol_rows(db: Database) -> int:
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(UniverseSymbol)) or 0


def test_create_then_get_returns_symbols_in_the_given_order(repo: UniverseRepository) -> None:
    symbols = ["MSFT", "AAPL", "BRK.B", "^GSPC", "GOOG"]

    repo.create("mine", symbols, description="my picks")

    assert repo.get("mine") == symbols


def test_get_of_an_unknown_universe_is_none(repo: UniverseRepository) -> None:
    assert repo.get("nothing-here") is None


def test_list_shows_name_description_size_and_creation_time(repo: UniverseRepository) -> None:
    before = dt.datetime.now(dt.UTC)
    repo.create("tech", ["AAPL", "MSFT", "NVDA"], description="big tech")
    repo.create("banks", ["JPM", "BAC"])

    listed = repo.list()

    assert [(u.name, u.description, u.size) for u in listed] == [
        ("banks", "", 2),
        ("tech", "big tech", 3),
    ]
    assert all(u.created_at.tzinfo is not None and u.created_at >= before for u in listed)


def test_list_is_empty_on_a_fresh_database(repo: UniverseRepository) -> None:
    assert repo.list() == []


def test_duplicate_symbols_are_rejected_and_nothing_is_stored(
    repo: UniverseRepository, db: Database
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        repo.create("mine", ["AAPL", "MSFT", "AAPL"])

    assert str(caught.value) == "duplicate symbol 'AAPL' in universe 'mine'"
    assert repo.get("mine") is None
    assert _symbol_rows(db) == 0


def test_existing_name_without_replace_is_rejected_and_kept(repo: UniverseRepository) -> None:
    repo.create("mine", ["AAPL"])

    with pytest.raises(InvalidInputError) as caught:
        repo.create("mine", ["MSFT"])

    assert str(caught.value) == "universe 'mine' already exists — use --replace to overwrite"
    assert repo.get("mine") == ["AAPL"]


def test_replace_overwrites_symbols_and_description_but_keeps_creation_time(
    repo: UniverseRepository,
) -> None:
    repo.create("mine", ["AAPL", "MSFT", "NVDA"], description="old")
    (first,) = repo.list()

    repo.create("mine", ["NVDA", "AMD"], description="new", replace=True)

    (second,) = repo.list()
    assert repo.get("mine") == ["NVDA", "AMD"]
    assert (second.description, second.size) == ("new", 2)
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at


def test_replace_with_duplicates_leaves_the_old_list(repo: UniverseRepository) -> None:
    repo.create("mine", ["AAPL", "MSFT"])

    with pytest.raises(InvalidInputError, match="duplicate symbol 'AMD'"):
        repo.create("mine", ["AMD", "AMD"], replace=True)

    assert repo.get("mine") == ["AAPL", "MSFT"]


def test_replace_creates_a_universe_that_does_not_exist_yet(repo: UniverseRepository) -> None:
    repo.create("fresh", ["AAPL"], replace=True)
    assert repo.get("fresh") == ["AAPL"]


def test_delete_removes_the_universe_and_cascades_to_its_symbols(
    repo: UniverseRepository, db: Database
) -> None:
    repo.create("gone", ["AAPL", "MSFT"])
    repo.create("kept", ["JPM"])

    assert repo.delete("gone") is True

    assert repo.get("gone") is None
    assert repo.get("kept") == ["JPM"]
    assert _symbol_rows(db) == 1


def test_delete_of_an_unknown_universe_returns_false(repo: UniverseRepository) -> None:
    assert repo.delete("never-was") is False


def test_the_database_itself_refuses_a_duplicate_symbol(db: Database) -> None:
    # The primary key (universe_id, symbol) guards the rule even for writers that
    # bypass the repository.
    UniverseRepository(db).create("mine", ["AAPL"])
    with pytest.raises(sa.exc.IntegrityError), db.session() as session:
        universe_id = session.scalar(sa.text("SELECT id FROM universes WHERE name = 'mine'"))
        session.add(UniverseSymbol(universe_id=universe_id, symbol="AAPL", position=1))


@pytest.mark.parametrize(
    "name", ["Mine", "-dash-first", "", "with space", "a" * 65, "dot.ted", "slash/ed"]
)
def test_invalid_names_are_rejected_with_one_line(repo: UniverseRepository, name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        repo.create(name, ["AAPL"])

    message = str(caught.value)
    assert message.startswith(f"invalid universe name '{name}' — expected 1-64 characters")
    assert "\n" not in message


@pytest.mark.parametrize("name", ["a", "0day", "my-tech_10", "x" * 64])
def test_valid_names_are_accepted(repo: UniverseRepository, name: str) -> None:
    repo.create(name, ["AAPL"])
    assert repo.get(name) == ["AAPL"]


def test_an_empty_symbol_list_is_rejected(repo: UniverseRepository) -> None:
    with pytest.raises(InvalidInputError, match="universe 'mine' has no symbols"):
        repo.create("mine", [])
