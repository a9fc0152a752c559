"""Dependencies shared by the routes: the app context, the caller's token, auth rules.

- :data:`Ctx`: the :class:`~breadthflow.services.context.AppContext` on ``app.state.ctx``;
- :data:`Reader`: every read route. Open unless ``api_read_requires_token`` is on; a
  token that is presented must be valid either way (401 otherwise);
- :data:`Writer`: every route that changes state. 401 without a valid bearer token, 403
  with a ``read`` token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from breadthflow.services.context import AppContext
from breadthflow.services.tokens import authenticate, can_write
from breadthflow.store.tokens import TokenInfo

BEARER = {"WWW-Authenticate": "Bearer"}


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


def presented_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "malformed Authorization header — expected 'Bearer <token>'",
            headers=BEARER,
        )
    return token.strip()


def caller_token(request: Request, ctx: Ctx) -> TokenInfo | None:
    """The caller's active token; None when none was sent; 401 for a bad one."""
    token = presented_token(request)
    if token is None:
        return None
    info = authenticate(ctx, token)
    if info is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API token", headers=BEARER
        )
    request.state.token = info
    return info


def require_read(
    info: Annotated[TokenInfo | None, Depends(caller_token)], ctx: Ctx
) -> TokenInfo | None:
    if info is None and ctx.settings.api_read_requires_token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this server requires a bearer token for reads — send Authorization: Bearer <token>",
            headers=BEARER,
        )
    return info


def require_write(info: Annotated[TokenInfo | None, Depends(caller_token)]) -> TokenInfo:
    if info is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this route changes state and needs a token — send Authorization: Bearer <token> "
            "(`breadthflow token create NAME --scope write`)",
            headers=BEARER,
        )
    if not can_write(info):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token '{info.name}' is read-only (scope {info.scope}) — use a write or admin token",
        )
    return info


Reader = Annotated[TokenInfo | None, Depends(require_read)]
Writer = Annotated[TokenInfo, Depends(require_write)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None
