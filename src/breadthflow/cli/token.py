"""``breadthflow token …``: API tokens (stored hashed; a new token is shown once)."""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.services import tokens as svc

app = typer.Typer(
    help="API tokens for `breadthflow serve`: create, list, revoke (docs/api.md).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="A name for the token (who or what uses it).")]
COLUMNS = ("name", "scope", "prefix", "created_at", "last_used_at", "revoked_at", "active")


@app.command("create")
def create(
    name: NameArg,
    scope: Annotated[
        str, typer.Option("--scope", help="read (GET only), write (everything) or admin.")
    ] = "read",
    fmt: FormatOpt = Format.table,
) -> None:
    """Create a token and print it — the only time it is shown (only its hash is kept)."""
    new = svc.create_token(context(), name, scope)
    if fmt is not Format.table:
        emit_record({**new.info.model_dump(), "token": new.token}, fmt)
        return
    out.print(new.token, markup=False, highlight=False)
    err.print(
        f"token '{new.info.name}' ({new.info.scope}) created — copy it now, it is not shown "
        "again; send it as `Authorization: Bearer <token>`",
        markup=False,
        highlight=False,
    )


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Tokens (never their secrets), oldest first."""
    rows = [
        {**t.model_dump(), "active": t.active}
        for t in svc.list_tokens(context(), include_revoked=all_)
    ]
    emit_rows(rows, fmt, title="API tokens", columns=COLUMNS)


@app.command("revoke")
def revoke(name: NameArg) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    info = svc.revoke_token(context(), name)
    out.print(f"revoked token '{info.name}'", markup=False, highlight=False)
