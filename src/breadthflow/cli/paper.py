"""``breadthflow paper …``: paper-trading accounts, orders and positions (docs/paper.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows
from breadthflow.services import paper as svc

app = typer.Typer(
    help="Paper trading: account, orders, positions, fills (docs/paper.md).", no_args_is_help=True
)

PipelineArg = Annotated[
    str | None, typer.Argument(help="Paper pipeline (its account); default: all accounts.")
]
ACCOUNT_COLUMNS = ("name", "broker", "equity", "cash", "positions_value", "total_pnl",
                   "return_pct", "realized_pnl", "unrealized_pnl", "fees_paid",
                   "open_positions", "pending_orders", "last_bar_date")  # fmt: skip
ORDER_COLUMNS = ("id", "account", "signal_date", "symbol", "side", "quantity", "status",
                 "filled_date", "fill_price", "fee", "reason", "error")  # fmt: skip
POSITION_COLUMNS = ("account", "symbol", "quantity", "avg_cost", "last_price", "market_value",
                    "unrealized_pnl")  # fmt: skip
FILL_COLUMNS = ("id", "account", "date", "symbol", "side", "quantity", "price", "fee",
                "realized_pnl")  # fmt: skip


@app.command("account")
def account(pipeline: PipelineArg = None, fmt: FormatOpt = Format.table) -> None:
    """Cash, equity and PnL of a paper account (or of every account)."""
    found = svc.accounts(context(), pipeline)
    if pipeline:
        emit_record(found[0].model_dump(), fmt, title=f"Paper account {pipeline}")
    else:
        emit_rows([a.model_dump() for a in found], fmt, title="Paper accounts",
                  columns=ACCOUNT_COLUMNS)  # fmt: skip


@app.command("orders")
def orders(
    pipeline: PipelineArg = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending, filled, cancelled or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 100,
    fmt: FormatOpt = Format.table,
) -> None:
    """Orders, newest first."""
    rows = [o.model_dump() for o in svc.orders(context(), pipeline, status, limit)]
    emit_rows(rows, fmt, title="Paper orders", columns=ORDER_COLUMNS)


@app.command("positions")
def positions(pipeline: PipelineArg = None, fmt: FormatOpt = Format.table) -> None:
    """Open positions marked to the last close."""
    rows = [p.model_dump() for p in svc.positions(context(), pipeline)]
    emit_rows(rows, fmt, title="Paper positions", columns=POSITION_COLUMNS)


@app.command("fills")
def fills(
    pipeline: PipelineArg = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 1000,
    fmt: FormatOpt = Format.table,
) -> None:
    """Executions, oldest first."""
    rows = [f.model_dump() for f in svc.fills(context(), pipeline, limit)]
    emit_rows(rows, fmt, title="Paper fills", columns=FILL_COLUMNS)
