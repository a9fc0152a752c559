"""User universes: named, ordered symbol lists kept in the metadata DB.

Built-in universes live in code (``breadthflow.data.universes``); this repository only
stores the user's own lists. Symbols arrive already normalised by the caller; the
repository still guarantees that a list never holds the same symbol twice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from breadthflow.core.errors import InvalidInputError
from breadthflow.store.db import Database
from breadthflow.store.models import Universe, UniverseSymbol, utcnow

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class UniverseSummary(BaseModel):
    """One stored universe as listed by ``data universes``."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    size: int
    created_at: dt.datetime
    updated_at: dt.datetime


def validate_universe_name(name: str) -> str:
    """Return ``name`` if it is a valid universe name, else raise one clear line.

    >>> validate_universe_name("my-tech_10")
    'my-tech_10'
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInputError(
            f"invalid universe name '{name}' — expected 1-64 characters: lower-case letters, "
            "digits, '_' and '-', starting with a letter or digit (e.g. my-tech)"
        )
    return name


class UniverseRepository:
    """Store, list, read and delete user universes.

    >>> repo = UniverseRepository(open_database(url))              # doctest: +SKIP
    >>> repo.create("mine", ["AAPL", "MSFT"], description="two")   # doctest: +SKIP
    >>> repo.get("mine")                                           # doctest: +SKIP
    ['AAPL', 'MSFT']
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self) -> list[UniverseSummary]:
        """Every stored universe with its symbol count, sorted by name."""
        size = (
            select(func.count())
            .where(UniverseSymbol.universe_id == Universe.id)
            .correlate(Universe)
            .scalar_subquery()
        )
        query = select(
            Universe.name, Universe.description, size, Universe.created_at, Universe.updated_at
        ).order_by(Universe.name)
        with self.db.session() as session:
            rows = session.execute(query).all()
        return [
            UniverseSummary(
                name=name,
                description=description,
                size=count,
                created_at=created,
                updated_at=updated,
            )
            for name, description, count, created, updated in rows
        ]

    def get(self, name: str) -> list[str] | None:
        """The symbols of universe ``name`` in stored order, or None when there is none."""
        with self.db.session() as session:
            universe_id = session.scalar(select(Universe.id).where(Universe.name == name))
            if universe_id is None:
                return None
            symbols = session.scalars(
                select(UniverseSymbol.symbol)
                .where(UniverseSymbol.universe_id == universe_id)
                .order_by(UniverseSymbol.position)
            ).all()
        return list(symbols)

    def create(
        self,
        name: str,
        symbols: Sequence[str],
        description: str = "",
        replace: bool = False,
    ) -> None:
        """Store universe ``name`` with ``symbols`` in the given order.

        Duplicates in ``symbols`` are rejected (not merged) and nothing is stored. An
        existing universe is only overwritten with ``replace=True``; it keeps its
        creation time.
        """
        validate_universe_name(name)
        symbols = list(symbols)
        if not symbols:
            raise InvalidInputError(f"universe '{name}' has no symbols — give at least one")
        seen: set[str] = set()
        for symbol in symbols:
            if symbol in seen:
                raise InvalidInputError(f"duplicate symbol '{symbol}' in universe '{name}'")
            seen.add(symbol)
        exists = InvalidInputError(f"universe '{name}' already exists — use --replace to overwrite")

        try:
            with self.db.session() as session:
                universe = session.scalars(select(Universe).where(Universe.name == name)).first()
                if universe is None:
                    universe = Universe(name=name, description=description)
                    session.add(universe)
                    session.flush()  # assigns universe.id
                elif not replace:
                    raise exists
                else:
                    universe.description = description
                    universe.updated_at = utcnow()
                    session.execute(
                        delete(UniverseSymbol).where(UniverseSymbol.universe_id == universe.id)
                    )
                session.execute(
                    insert(UniverseSymbol),
                    [
                        {"universe_id": universe.id, "symbol": symbol, "position": position}
                        for position, symbol in enumerate(symbols)
                    ],
                )
        except IntegrityError:
            # Another process created the same name between our check and our insert.
            raise exists from None

    def delete(self, name: str) -> bool:
        """Delete universe ``name`` and its symbols; False when it did not exist."""
        with self.db.session() as session:
            # The database cascades to universe_symbols (ON DELETE CASCADE).
            result = session.execute(delete(Universe).where(Universe.name == name))
        return bool(result.rowcount)
