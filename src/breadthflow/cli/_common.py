"""Options and helpers shared by CLI groups."""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._output import Format
from breadthflow.services.context import AppContext

FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="Output format: table, json or csv.")
]
SymbolsOpt = Annotated[
    str | None, typer.Option("--symbols", "-s", help="Comma-separated symbols, e.g. AAPL,MSFT.")
]
UniverseOpt = Annotated[
    str | None, typer.Option("--universe", "-u", help="A named universe (see `data universes`).")
]
StartOpt = Annotated[str, typer.Option("--start", help="First date, YYYY-MM-DD.")]
EndOpt = Annotated[str, typer.Option("--end", help="Last date (inclusive), YYYY-MM-DD.")]
TimeframeOpt = Annotated[
    str, typer.Option("--timeframe", "-t", help="Bar interval: 1m, 5m, 15m, 1h or 1d.")
]


def context() -> AppContext:
    ctx = AppContext()
    ctx.configure_logging()
    return ctx
