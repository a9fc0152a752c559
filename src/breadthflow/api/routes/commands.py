"""Commands: ``POST /execute`` and ``POST /api/v1/commands/execute`` run one command of
the allowlist with typed parameters (audited); the catalogue and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from breadthflow.api.deps import Ctx, Reader, Writer, client_address
from breadthflow.api.schemas import MAX_ID, CommandRequest, Page, page
from breadthflow.services import commands as svc
from breadthflow.store.audit import AuditEntry

router = APIRouter(prefix="/commands", tags=["commands"])
root_router = APIRouter(tags=["commands"])

EXECUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid bearer token"},
    403: {"description": "a read-only token"},
    422: {"description": "unknown command or bad parameters (field and reason)"},
}


def _execute(body: CommandRequest, request: Request, ctx: Ctx, token: Writer) -> svc.CommandResult:
    caller = svc.Caller(token.name, token.id, client_address(request))
    return svc.execute(ctx, body.command, body.parameters, caller)


@root_router.post("/execute", response_model=svc.CommandResult, responses=EXECUTE_RESPONSES)
def execute(body: CommandRequest, request: Request, ctx: Ctx, token: Writer) -> svc.CommandResult:
    """Run an allowlisted command (see ``GET /api/v1/commands``) through the same service
    functions as the CLI. Never a shell: the name selects a function, the parameters are
    validated by its model. Every call is audited."""
    return _execute(body, request, ctx, token)


@router.post("/execute", response_model=svc.CommandResult, responses=EXECUTE_RESPONSES)
def execute_v1(
    body: CommandRequest, request: Request, ctx: Ctx, token: Writer
) -> svc.CommandResult:
    """The same as ``POST /execute``."""
    return _execute(body, request, ctx, token)


@router.get("")
def catalog(_: Reader) -> list[dict[str, Any]]:
    """The allowlist: each command's name, description and parameter JSON schema."""
    return svc.catalog()


@router.get("/audit", response_model=Page[AuditEntry])
def audit(
    ctx: Ctx,
    _: Writer,
    command: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """Executed commands, newest first: who, what, when, how it ended (write token, as the
    log shows parameters)."""
    items, total = svc.audit_log(ctx, limit, offset, command)
    return page(items, total, limit, offset)
