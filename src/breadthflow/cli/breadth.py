"""``breadthflow breadth …``: the market-breadth table of a universe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breadthflow.cli._common import EndOpt, FormatOpt, StartOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._output import Format, emit_rows, err, out
from breadthflow.services import breadth as svc
from breadthflow.services.data import check_output_path

app = typer.Typer(help="Market breadth of a universe (see docs/breadth.md).", no_args_is_help=True)

# What a person reads in a terminal; --format json/csv and --output give every column.
TABLE_COLUMNS = (
    "date", "advances", "declines", "ad_line", "mcclellan_osc", "mcclellan_sum",
    "pct_above_sma50", "new_highs", "new_lows", "trin", "zbt", "zbt_thrust",
)  # fmt: skip
TABLE_ROWS = 20


@app.command("compute")
def compute(
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    hl_window: Annotated[
        int, typer.Option("--hl-window", help="Look-back of new highs/lows, in bars.")
    ] = 252,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write every column to FILE.csv or .parquet."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Advances/declines, A/D line, McClellan, % above SMAs, new highs/lows, TRIN, Zweig."""
    if output is not None:
        check_output_path(output)  # refuse a bad path before the work, not after
    table = svc.compute_breadth(context(), start, end, symbols, universe, hl_window)
    if output is not None:
        path = svc.save_breadth(table, output)
        err.print(f"wrote {table.height:,} dates to {path}", markup=False, highlight=False)
    if fmt is not Format.table:
        emit_rows(table.to_dicts(), fmt, columns=table.columns)
        return
    shown = table.tail(TABLE_ROWS).select(TABLE_COLUMNS)
    emit_rows(shown.to_dicts(), fmt, title=f"Breadth, {table['date'][0]} → {table['date'][-1]}")
    out.print(
        f"last {shown.height} of {table.height} dates, {len(TABLE_COLUMNS)} of "
        f"{table.width} columns — --format json|csv or --output FILE for all",
        markup=False,
        highlight=False,
    )
