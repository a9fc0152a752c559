"""``/api/v1/data`` (what is stored) and ``/api/v1/universes`` (named symbol lists)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from breadthflow.api.deps import Ctx, Reader, Writer
from breadthflow.api.schemas import UniverseIn
from breadthflow.data import universes
from breadthflow.services import data as svc
from breadthflow.store._json import json_safe

router = APIRouter(tags=["data"])


@router.get("/data/summary")
def data_summary(ctx: Ctx, _: Reader) -> dict[str, Any]:
    """Stored bars per timeframe (symbols, rows, first and last date) and recent fetches."""
    return svc.data_summary(ctx)


@router.get("/data/coverage")
def coverage(
    ctx: Ctx,
    _: Reader,
    timeframe: Annotated[str, Query(max_length=8, description="1m, 5m, 15m, 1h or 1d")] = "1d",
) -> list[dict[str, Any]]:
    """Per symbol: rows and first/last date stored."""
    return json_safe(svc.coverage(ctx, timeframe).to_dicts())


@router.get("/universes")
def list_universes(ctx: Ctx, _: Reader) -> list[dict[str, Any]]:
    """Built-in and user universes with their sizes."""
    return svc.list_universes(ctx)


@router.get("/universes/{name}")
def get_universe(name: str, ctx: Ctx, _: Reader) -> dict[str, Any]:
    """A universe's symbols, in order."""
    symbols = svc.resolve_symbols(ctx, None, name)
    return {"name": name, "builtin": universes.is_builtin(name), "symbols": symbols}


@router.post("/universes", status_code=status.HTTP_201_CREATED)
def create_universe(body: UniverseIn, ctx: Ctx, _: Writer) -> dict[str, Any]:
    """Store a user universe (``replace`` to overwrite one); duplicates are refused."""
    symbols = svc.create_universe(ctx, body.name, body.symbols, body.description, body.replace)
    return {"name": body.name, "builtin": False, "symbols": symbols}


@router.delete("/universes/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_universe(name: str, ctx: Ctx, _: Writer) -> Response:
    svc.delete_universe(ctx, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
