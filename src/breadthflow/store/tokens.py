"""API tokens: stored as the SHA-256 of the token, never the token itself.

A token is looked up by its hash (a unique index), so checking one costs one indexed
read; :meth:`TokenRepository.touch` records when it was last used.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from breadthflow.core.errors import InvalidInputError, unknown_name
from breadthflow.store.db import Database
from breadthflow.store.models import ApiTokenRow, utcnow


class TokenInfo(BaseModel):
    """A stored token, without its secret."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    prefix: str
    scope: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, token_hash: str, prefix: str, scope: str) -> TokenInfo:
        row = ApiTokenRow(
            name=name, token_hash=token_hash, prefix=prefix, scope=scope, created_at=utcnow()
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return _info(row)
        except IntegrityError:
            raise InvalidInputError(
                f"a token named '{name}' already exists — choose another name "
                "(`breadthflow token list` shows them)"
            ) from None

    def by_hash(self, token_hash: str) -> TokenInfo | None:
        with self.db.session() as session:
            row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))
            return _info(row) if row is not None else None

    def touch(self, token_id: int, when: dt.datetime) -> None:
        with self.db.session() as session:
            session.execute(
                update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=when),
                execution_options={"synchronize_session": False},
            )

    def list(self, include_revoked: bool = True) -> list[TokenInfo]:
        query = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id)
        if not include_revoked:
            query = query.where(ApiTokenRow.revoked_at.is_(None))
        with self.db.session() as session:
            return [_info(r) for r in session.scalars(query)]

    def count_active(self, scope: str | None = None) -> int:
        query = (
            select(func.count()).select_from(ApiTokenRow).where(ApiTokenRow.revoked_at.is_(None))
        )
        if scope is not None:
            query = query.where(ApiTokenRow.scope == scope)
        with self.db.session() as session:
            return int(session.scalar(query) or 0)

    def revoke(self, name: str) -> TokenInfo:
        with self.db.session() as session:
            row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.name == name))
            if row is None:
                raise unknown_name("token", name, session.scalars(select(ApiTokenRow.name)).all())
            if row.revoked_at is not None:
                raise InvalidInputError(f"token '{name}' was already revoked at {row.revoked_at}")
            row.revoked_at = utcnow()
            session.flush()
            return _info(row)


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scope=row.scope,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
