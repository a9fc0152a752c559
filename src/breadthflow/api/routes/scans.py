"""``/api/v1/scans``: run a scan, list and show stored scans, check a formula."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from breadthflow.api.deps import Ctx, Reader, Writer
from breadthflow.api.schemas import MAX_ID, Page, RowId, page
from breadthflow.core.errors import NotFoundError
from breadthflow.scan.grammar import FormulaError
from breadthflow.services import scan as svc
from breadthflow.services.commands import MAX_SCAN_MATCHES, ScanParams
from breadthflow.store._json import json_safe
from breadthflow.store.scans import ScanSummary

router = APIRouter(prefix="/scans", tags=["scans"])


@router.post("", status_code=status.HTTP_201_CREATED)
def run_scan(body: ScanParams, ctx: Ctx, _: Writer) -> dict[str, Any]:
    """Scan the universe with a formula over a range (``start``/``end``) or one day
    (``on``); the scan is stored. At most 1,000 matches are returned (all are stored)."""
    period = svc.scan_range(body.start, body.end, body.on)
    outcome = svc.run_scan(
        ctx, body.formula, period, body.symbols, body.universe, body.latest, body.limit
    )
    result = outcome.as_json()
    result["matches_total"] = len(result["matches"])
    result["matches"] = result["matches"][:MAX_SCAN_MATCHES]
    return json_safe(result)


@router.get("/check")
def check_formula(
    _: Reader, formula: Annotated[str, Query(min_length=1, max_length=10_000)]
) -> dict[str, Any]:
    """Compile a formula without running it: ``ok`` or the error with its line:column
    (for inline errors in a formula box)."""
    try:
        compiled = svc.check(formula)
    except FormulaError as exc:
        return {"ok": False, "error": str(exc), "line": exc.line, "column": exc.column}
    return {
        "ok": True,
        "formula": compiled.text,
        "values": list(compiled.value_names),
        "needs_breadth": compiled.needs_breadth,
    }


@router.get("", response_model=Page[ScanSummary])
def list_scans(
    ctx: Ctx,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    items, total = svc.list_scans(ctx, limit, offset)
    return page(items, total, limit, offset)


@router.get("/{scan_id}")
def get_scan(
    scan_id: RowId,
    ctx: Ctx,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    """A stored scan and a page of its matches."""
    summary, matches = svc.show_scan(ctx, scan_id)
    if matches is None and summary.status != "running" and summary.artifacts:
        raise NotFoundError(f"scan {scan_id}: its matches are missing from the lake")
    rows = matches.slice(offset, limit).to_dicts() if matches is not None else []
    total = matches.height if matches is not None else 0
    return {
        **summary.model_dump(mode="json"),
        "matches": json_safe(page(rows, total, limit, offset)),
    }
