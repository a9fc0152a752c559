"""Scan services: which symbols match a formula, when — over stored bars, recorded.

One implementation for every interface (CLI, API, pipelines). A scan compiles the
formula first (a bad formula is refused before any I/O), reads from the lake only the bar
columns the formula uses, with the warm-up it needs, evaluates it over the whole universe
with the :class:`~breadthflow.scan.engine.ProcessingEngine` (columnar: the matches come
back as one frame), and records the scan in the DB and its matches in the lake
(``results/scans/<id>/``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.core.models import DateRange, Timeframe, parse_date
from breadthflow.engine import open_engine
from breadthflow.scan._rolling import kernels_loaded, load_kernels
from breadthflow.scan.engine import BatchOutcome, ProcessingEngine, ProcessingJob, ProcessingResult
from breadthflow.scan.formula import Formula, compile_formula
from breadthflow.services.context import AppContext
from breadthflow.services.data import resolve_symbols
from breadthflow.services.signals import universe_label
from breadthflow.store.scans import ScanRepository, ScanSummary

BREADTH_COLUMNS_IN = ("symbol", "date", "close", "volume")


@dataclass
class ScanOutcome:
    id: int | None
    formula: str
    universe: str
    start: dt.date
    end: dt.date
    matches: pl.DataFrame  # symbol, date, <values…>
    errors: list[dict[str, str]]
    summary: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "formula": self.formula,
            "universe": self.universe,
            "start": self.start,
            "end": self.end,
            "summary": self.summary,
            "errors": self.errors,
            "matches": self.matches.to_dicts(),
        }


def warm_up() -> None:
    """Start loading the scan's compiled kernels in a background thread, as a server does
    when it starts: its first scan then skips numba's start-up (a few tenths of a second;
    docs/scan.md, "Execution model")."""
    load_kernels()


def warmed_up() -> bool:
    """Whether this process has its scan kernels loaded."""
    return kernels_loaded()


def check(formula: str) -> Formula:
    """Compile only: a :class:`~breadthflow.scan.formula.FormulaError` names the position."""
    return compile_formula(formula)


def scan_range(
    start: str | dt.date | None, end: str | dt.date | None, on: str | dt.date | None
) -> DateRange:
    """``--on D`` (one date) or ``--start/--end`` (both); one of the two, not both."""
    if on is not None:
        if start is not None or end is not None:
            raise InvalidInputError("give either --on DATE or --start/--end, not both")
        day = parse_date(on, "scan date")
        return DateRange(start=day, end=day)
    if start is None or end is None:
        raise InvalidInputError("give --start and --end (or --on DATE for a single day)")
    return DateRange.parse(start, end)


def run_scan(
    ctx: AppContext,
    formula: str,
    period: DateRange,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
    latest: bool = False,
    limit: int | None = None,
    hl_window: int = 252,
    store: bool = True,
    progress: Callable[[int, int], None] | None = None,
    pipeline_run_id: str | None = None,
) -> ScanOutcome:
    """Scan the universe with ``formula`` over ``period`` and (by default) record it."""
    compiled = compile_formula(formula)
    if limit is not None and limit < 1:
        raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
    wanted = resolve_symbols(ctx, symbols, universe)
    label = universe_label(universe, wanted)
    if compiled.needs_breadth and len(wanted) < 2:
        raise InvalidInputError(
            f"the formula uses market breadth, which needs at least 2 symbols — '{label}' "
            f"has {len(wanted)}"
        )

    columns = ["symbol", "date", *compiled.fields]  # only what the formula reads

    def load_bars(chosen: Sequence[str], a: dt.date, b: dt.date) -> pl.DataFrame:
        return ctx.lake.read(list(chosen), Timeframe.D1, a, b, columns=columns)

    compute = open_engine(ctx.settings.engine)

    def load_breadth(a: dt.date, b: dt.date) -> pl.DataFrame:
        bars = ctx.lake.read(wanted, Timeframe.D1, a, b, columns=list(BREADTH_COLUMNS_IN))
        return compute.breadth_table(bars, hl_window=hl_window)

    engine = ProcessingEngine(
        load_bars,
        load_breadth if compiled.needs_breadth else None,
        # With Spark (BREADTHFLOW_ENGINE), the formula runs there, per symbol group.
        evaluate=None if compute.name == "polars" else compute.evaluate_formula,
    )
    parameters = {"latest": latest, "limit": limit}
    job = ProcessingJob(
        id=uuid.uuid4().hex[:12],
        symbols=tuple(wanted),
        timeframe=Timeframe.D1.value,
        date_range=(period.start, period.end),
        formula=compiled.text,
        parameters=parameters,
    )
    repo = ScanRepository(ctx.db) if store else None
    scan_id = (
        repo.start(compiled.text, label, len(wanted), period.start, period.end,
                   {**parameters, "hl_window": hl_window}, pipeline_run_id=pipeline_run_id)
        if repo else None
    )  # fmt: skip
    began = time.perf_counter()
    try:
        batch = engine.process_batch_frame(job, progress)
        matches = _newest_first(batch.matches)
        errors = [{"symbol": s, "error": batch.errors[s]} for s in job.symbols
                  if s in batch.errors]  # fmt: skip
        summary = {
            **batch.summary(),
            "symbols": len(wanted),
            "seconds": round(time.perf_counter() - began, 4),
        }
        if repo is not None and scan_id is not None:
            artifacts = f"results/scans/{scan_id}"
            ctx.lake.write_table(f"{artifacts}/matches.parquet", matches)
            summary["status"] = repo.finish(
                scan_id, matches.height, matches["symbol"].n_unique() if matches.height else 0,
                len(errors), artifacts,
            )  # fmt: skip
    except BaseException as exc:
        if repo is not None and scan_id is not None:
            repo.fail(scan_id, str(exc) if isinstance(exc, BreadthFlowError) else repr(exc))
        raise
    return ScanOutcome(scan_id, compiled.text, label, period.start, period.end, matches,
                       errors, summary)  # fmt: skip


def matches_frame(
    results: Sequence[ProcessingResult] | BatchOutcome, formula: Formula
) -> pl.DataFrame:
    """Every match as a row: ``symbol, date`` and the formula's value columns, newest
    first (then by symbol)."""
    if isinstance(results, BatchOutcome):
        return _newest_first(results.matches)
    rows = [{"symbol": r.symbol, **m} for r in results for m in r.matches]
    schema: dict[str, Any] = {"symbol": pl.String, "date": pl.Date}
    schema |= {name: pl.Float64 for name in formula.value_names}
    if not rows:
        return pl.DataFrame(schema=schema)
    return _newest_first(pl.DataFrame(rows, schema=schema, strict=False))


def _newest_first(matches: pl.DataFrame) -> pl.DataFrame:
    """Newest date first, then by symbol."""
    if matches.get_column("symbol").is_sorted():
        # The engine's usual order (symbols in order): a stable sort on the date keeps the
        # symbols in order within each date, at half the cost of a two-key sort.
        return matches.sort("date", descending=True, maintain_order=True)
    return matches.sort(["date", "symbol"], descending=[True, False])


def list_scans(ctx: AppContext, limit: int = 20, offset: int = 0) -> tuple[list[ScanSummary], int]:
    repo = ScanRepository(ctx.db)
    return repo.list(limit, offset), repo.count()


def show_scan(ctx: AppContext, scan_id: int) -> tuple[ScanSummary, pl.DataFrame | None]:
    summary = ScanRepository(ctx.db).get(scan_id)
    matches = None
    if summary.artifacts:
        matches = ctx.lake.read_table(f"{summary.artifacts}/matches.parquet")
    return summary, matches
