"""``/api/v1/breadth``: the breadth table of a universe (or symbols) over a date range."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from breadthflow.api.deps import Ctx, Reader
from breadthflow.services.breadth import compute_breadth

router = APIRouter(tags=["breadth"])


class Orient(StrEnum):
    records = "records"
    columns = "columns"


def _json(frame: pl.DataFrame, orient: Orient) -> bytes:
    # NaN is not JSON: undefined values (warm-up, no declines for TRIN) become null.
    clean = frame.with_columns(pl.col(pl.Float32, pl.Float64).fill_nan(None))
    if orient is Orient.records:
        rows = clean.write_json()
        return (
            b'{"columns":' + json.dumps(clean.columns).encode() + b',"rows":' + rows.encode() + b"}"
        )
    columns = {
        name: clean[name].cast(pl.String).to_list()
        if clean[name].dtype in (pl.Date, pl.Datetime)
        else clean[name].to_list()
        for name in clean.columns
    }
    return json.dumps({"columns": clean.columns, "data": columns}).encode()


@router.get("/breadth", response_class=Response)
async def breadth(
    ctx: Ctx,
    _: Reader,
    start: Annotated[str, Query(description="First date, YYYY-MM-DD")],
    end: Annotated[str, Query(description="Last date (inclusive), YYYY-MM-DD")],
    universe: Annotated[str | None, Query(max_length=64)] = None,
    symbols: Annotated[str | None, Query(description="Comma-separated symbols")] = None,
    hl_window: Annotated[int, Query(ge=2, le=5000, description="New highs/lows look-back")] = 252,
    orient: Orient = Orient.records,
) -> Response:
    """One row per date: advances/declines, A/D line, McClellan, % above SMAs, new
    highs/lows, TRIN, … (docs/breadth.md). ``orient=columns`` gives one array per column
    (what charts want)."""
    table = await run_in_threadpool(compute_breadth, ctx, start, end, symbols, universe, hl_window)
    body = await run_in_threadpool(_json, table, orient)
    return Response(body, media_type="application/json")
