"""Error responses: one line of ``detail`` for every 4xx, plus ``errors`` (field and
reason) for bad payloads. Domain errors keep their own status
(:attr:`~breadthflow.core.errors.BreadthFlowError.http_status`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.scan.grammar import FormulaError
from breadthflow.services.commands import CommandParamsError

log = logging.getLogger("breadthflow.api")

_LOCATIONS = {"body", "query", "path", "header", "cookie"}


class PayloadError(InvalidInputError):
    """A payload that parsed but failed a model's checks; ``errors`` lists field and reason
    like FastAPI's own validation errors."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        first = errors[0]
        super().__init__(f"invalid {first['in']} field '{first['field']}': {first['reason']}")
        self.errors = errors


def payload_errors(exc: Any, where: str = "body") -> PayloadError:
    """A pydantic ``ValidationError`` as a :class:`PayloadError`."""
    found = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ())) or where
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        found.append({"field": field, "in": where, "reason": reason})
    return PayloadError(found)


def _field(loc: tuple[Any, ...]) -> tuple[str, str]:
    parts = [str(p) for p in loc]
    where = parts.pop(0) if parts and parts[0] in _LOCATIONS else "body"
    return where, ".".join(parts) or where


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        where, field = _field(tuple(error.get("loc", ())))
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append({"field": field, "in": where, "reason": reason})
    first = errors[0] if errors else {"field": "?", "in": "body", "reason": "invalid"}
    detail = f"invalid {first['in']} field '{first['field']}': {first['reason']}"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


async def _domain(_: Request, exc: BreadthFlowError) -> JSONResponse:
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, CommandParamsError | PayloadError):
        body["errors"] = exc.errors
    if isinstance(exc, FormulaError):
        body["line"], body["column"] = exc.line, exc.column
    if exc.http_status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc)
    return JSONResponse(body, status_code=exc.http_status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(BreadthFlowError, _domain)  # type: ignore[arg-type]
