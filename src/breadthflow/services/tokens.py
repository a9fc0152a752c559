"""API tokens: create (shown once), list, revoke, and check a presented token.

A token is ``bf_`` + 43 URL-safe characters from :func:`secrets.token_urlsafe` (256 bits).
Only its SHA-256 is stored, so a leaked database does not leak usable tokens. Scopes:

- ``read``: GET routes (only needed when ``api_read_requires_token`` is on);
- ``write``: every route, including the ones that change state and ``/execute``;
- ``admin``: everything ``write`` can do (reserved for token management over HTTP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from breadthflow.core.errors import InvalidInputError
from breadthflow.services.context import AppContext
from breadthflow.store.models import TOKEN_SCOPES, utcnow
from breadthflow.store.tokens import TokenInfo, TokenRepository

TOKEN_PREFIX = "bf_"  # noqa: S105 — a marker, not a secret
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Scopes that may change state.
WRITE_SCOPES = ("write", "admin")
#: ``last_used_at`` is written at most this often per token, not on every request.
TOUCH_EVERY = dt.timedelta(seconds=60)
FIRST_ADMIN_NAME = "admin"


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    token: str  # the secret: shown once, never stored


def hash_token(token: str) -> str:
    """The stored form of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_scope(scope: str) -> str:
    value = scope.strip().lower()
    if value not in TOKEN_SCOPES:
        raise InvalidInputError(
            f"invalid scope '{scope}' — expected one of {', '.join(TOKEN_SCOPES)}"
        )
    return value


def create_token(ctx: AppContext, name: str, scope: str = "read") -> NewToken:
    """Create a token; the returned secret is the only time it can be seen.

    >>> new = create_token(ctx, "grafana", "read")              # doctest: +SKIP
    >>> new.token.startswith("bf_")                               # doctest: +SKIP
    True
    """
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInputError(
            f"invalid token name '{name}' — expected 1-64 letters, digits, '.', '-' or '_'"
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    info = TokenRepository(ctx.db).create(name, hash_token(token), token[:8], check_scope(scope))
    return NewToken(info, token)


def list_tokens(ctx: AppContext, include_revoked: bool = True) -> list[TokenInfo]:
    return TokenRepository(ctx.db).list(include_revoked)


def revoke_token(ctx: AppContext, name: str) -> TokenInfo:
    return TokenRepository(ctx.db).revoke(name)


def authenticate(ctx: AppContext, token: str) -> TokenInfo | None:
    """The active token matching ``token``, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    repo = TokenRepository(ctx.db)
    info = repo.by_hash(hash_token(token))
    if info is None or not info.active:
        return None
    now = utcnow()
    if info.last_used_at is None or now - info.last_used_at >= TOUCH_EVERY:
        repo.touch(info.id, now)
    return info


def can_write(info: TokenInfo) -> bool:
    return info.scope in WRITE_SCOPES


def ensure_first_admin(ctx: AppContext) -> NewToken | None:
    """On a first start (no active admin token), create one and return it; else None."""
    repo = TokenRepository(ctx.db)
    if repo.count_active("admin"):
        return None
    names = {t.name for t in repo.list()}
    name = FIRST_ADMIN_NAME
    suffix = 2
    while name in names:
        name = f"{FIRST_ADMIN_NAME}-{suffix}"
        suffix += 1
    return create_token(ctx, name, "admin")
