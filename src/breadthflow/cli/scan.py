"""``breadthflow scan "FORMULA" …``: which symbols match a formula, when.

``scan check "FORMULA"`` only validates; ``scan list`` and ``scan show ID`` read stored
scans. Anything else after ``scan`` is a scan to run (``scan run`` spelled out works too).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from breadthflow.cli._common import FormatOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.services import scan as svc

TABLE_ROWS = 50


class _ScanGroup(TyperGroup):
    """Route ``scan FORMULA …`` to ``scan run FORMULA …``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ScanGroup,
    help='Scan the universe with a formula: breadthflow scan "close > sma(close, 200)" '
    "--universe dow30 --on 2010-08-20 (docs/scan-formulas.md).",
    no_args_is_help=True,
)


@app.command("run")
def run(
    formula: Annotated[str, typer.Argument(help='The condition, e.g. "rsi(close, 14) < 30".')],
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    start: Annotated[str | None, typer.Option("--start", help="First date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last date (inclusive).")] = None,
    on: Annotated[str | None, typer.Option("--on", help="Scan one date only.")] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Only each symbol's latest match.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most N matches, newest first.")
    ] = None,
    hl_window: Annotated[
        int, typer.Option("--hl-window", help="New highs/lows look-back for breadth series.")
    ] = 252,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run a scan: the matching (symbol, date) pairs with the formula's values."""
    period = svc.scan_range(start, end, on)
    svc.check(formula)  # a bad formula is refused before anything is read
    ctx = context()
    with Progress(
        TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=fmt is not Format.table,
    ) as bar:  # fmt: skip
        task = bar.add_task("scan", total=None)
        outcome = svc.run_scan(
            ctx, formula, period, symbols, universe, latest, limit, hl_window,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    if fmt is Format.json:
        emit_record(outcome.as_json(), fmt)
        return
    rows = outcome.matches.to_dicts()
    if fmt is Format.csv:
        emit_rows(rows, fmt, columns=outcome.matches.columns)
        return
    shown = rows[:TABLE_ROWS]
    title = f"{outcome.formula} — {outcome.universe}, {outcome.start} → {outcome.end}"
    if shown:
        emit_rows(shown, fmt, title=title, columns=outcome.matches.columns)
    s = outcome.summary
    more = (
        f" (first {len(shown)} shown; --format json|csv for all)" if len(rows) > len(shown) else ""
    )
    out.print(
        f"{s.get('matches', len(rows)):,} matches in {s.get('symbols_matched', 0):,} of "
        f"{s.get('symbols', 0):,} symbols, {s.get('errors', 0)} errors, "
        f"{s.get('seconds', 0):.2f} s — scan #{outcome.id}{more}",
        markup=False,
        highlight=False,
    )
    for failure in outcome.errors[:5]:
        err.print(f"  {failure['symbol']}: {failure['error']}", markup=False, highlight=False)


@app.command("check")
def check(
    formula: Annotated[str, typer.Argument(help="The formula to validate.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Validate a formula without running it."""
    compiled = svc.check(formula)
    emit_record(
        {
            "formula": compiled.text,
            "valid": True,
            "warmup_bars": compiled.warmup_bars,
            "uses_breadth": compiled.needs_breadth,
            "cross_sectional": compiled.cross_sectional,
            "values": list(compiled.value_names),
        },
        fmt,
        title="Formula OK",
    )


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Stored scans, newest first."""
    scans, total = svc.list_scans(context(), limit, offset)
    rows = [
        {"id": s.id, "formula": s.formula, "universe": s.universe, "start": s.start,
         "end": s.end, "status": s.status, "matches": s.matches,
         "symbols_matched": s.symbols_matched, "errors": s.errors, "created_at": s.created_at}
        for s in scans
    ]  # fmt: skip
    emit_rows(rows, fmt, title="Scans", columns=list(rows[0]) if rows else ["id"])
    if fmt is Format.table:
        out.print(f"{len(rows)} of {total} stored", markup=False, highlight=False)


@app.command("show")
def show(
    scan_id: Annotated[int, typer.Argument(help="Scan id (`scan list`).")],
    fmt: FormatOpt = Format.table,
) -> None:
    """One stored scan and its matches."""
    summary, matches = svc.show_scan(context(), scan_id)
    rows = matches.to_dicts() if matches is not None else []
    if fmt is not Format.table:
        emit_record({**summary.model_dump(), "matches": rows}, fmt)
        return
    emit_record(summary.model_dump(), fmt, title=f"Scan #{summary.id}")
    if rows:
        emit_rows(rows[:TABLE_ROWS], fmt, title=f"Matches ({len(rows):,})")
