"""``breadthflow signals …``: generate strategy signals, list, summarise, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from breadthflow.cli._common import EndOpt, FormatOpt, StartOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, out
from breadthflow.core.models import Signal
from breadthflow.services import signals as svc

app = typer.Typer(
    help="Strategy signals: BUY/SELL/HOLD from breadth and technicals (docs/signals.md).",
    no_args_is_help=True,
)

StrategyFilterOpt = Annotated[
    str | None, typer.Option("--strategy", help="Only this strategy (see `signals strategies`).")
]
SymbolFilterOpt = Annotated[
    str | None,
    typer.Option("--symbol", help="Only this symbol (a universe name for market signals)."),
]
TypeFilterOpt = Annotated[str | None, typer.Option("--type", help="Only BUY, SELL or HOLD.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Signals dated on/after this.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Signals dated on/before this.")]
RunOpt = Annotated[
    str | None, typer.Option("--run-id", help="Pipeline run id the signals belong to.")
]

LIST_COLUMNS = ("date", "symbol", "strategy", "signal_type", "confidence", "strength")


@app.command("generate")
def generate(
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy name.")],
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Override a parameter: NAME=VALUE (repeatable)."),
    ] = None,
    hl_window: Annotated[
        int, typer.Option("--hl-window", help="Look-back of new highs/lows, in bars.")
    ] = 252,
    run_id: RunOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run a strategy over stored bars and store its signals (replacing an earlier run)."""
    params = svc.parse_params(param or [])
    batch = svc.generate_signals(
        context(), strategy, start, end, symbols, universe, params, run_id, hl_window
    )
    if fmt is not Format.table:
        emit_record(batch.model_dump(mode="json"), fmt)
        return
    emit_record(
        {
            "strategy": batch.strategy,
            "universe": batch.universe,
            "symbols with bars": batch.symbols,
            "range": f"{batch.start} → {batch.end}",
            "stored": batch.stored,
            "replaced": batch.replaced,
            "BUY / SELL / HOLD": " / ".join(
                f"{batch.counts[k]:,}" for k in ("BUY", "SELL", "HOLD")
            ),
            "run id": batch.pipeline_run_id or "—",
            "time": f"{batch.seconds:.2f} s",
        },
        fmt,
        title=f"Signals: {batch.strategy}",
    )
    if batch.latest:
        emit_rows(_rows(batch.latest), fmt, title="Latest signals", columns=LIST_COLUMNS)


@app.command("list")
def list_(
    strategy: StrategyFilterOpt = None,
    symbol: SymbolFilterOpt = None,
    signal_type: TypeFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    run_id: RunOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many rows first.")] = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Stored signals, newest first."""
    where = svc.signal_filter(strategy, symbol, signal_type, since, until, run_id)
    rows, total = svc.list_signals(context(), where, limit, offset)
    if fmt is not Format.table:
        emit_rows(_rows(rows, json_factors=fmt is Format.csv), fmt, columns=svc.EXPORT_COLUMNS)
        return
    emit_rows(_rows(rows), fmt, title="Signals", columns=LIST_COLUMNS)
    out.print(f"{len(rows):,} of {total:,} matching", markup=False, highlight=False)


@app.command("summary")
def summary(
    strategy: StrategyFilterOpt = None,
    symbol: SymbolFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Stored signals per strategy: counts by type, symbols, date range."""
    where = svc.signal_filter(strategy, symbol, None, since, until)
    rows = [s.model_dump() for s in svc.summarize_signals(context(), where)]
    if not rows and fmt is Format.table:
        out.print("no signals stored — run `breadthflow signals generate`", markup=False)
        return
    emit_rows(rows, fmt, title="Signals by strategy")


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.csv or FILE.parquet.")],
    strategy: StrategyFilterOpt = None,
    symbol: SymbolFilterOpt = None,
    signal_type: TypeFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    run_id: RunOpt = None,
) -> None:
    """Write stored signals to CSV or Parquet (factors as JSON text)."""
    where = svc.signal_filter(strategy, symbol, signal_type, since, until, run_id)
    path, count = svc.export_signals(context(), output, where)
    out.print(f"wrote {count:,} signals to {path}", markup=False, highlight=False)


@app.command("strategies")
def strategies(fmt: FormatOpt = Format.table) -> None:
    """Registered strategies and their effective parameters (versioned config)."""
    catalog = svc.strategy_catalog(context())
    if fmt is Format.json:
        emit_record(catalog, fmt)
        return
    listed = catalog["strategies"]
    params = [
        {"strategy": s["name"], "parameter": k, "value": v}
        for s in listed
        for k, v in _flat(s["params"]).items()
    ]
    if fmt is Format.csv:
        emit_rows(params, fmt)
        return
    title = f"Strategies (config version {catalog['version']})"
    emit_rows([{k: v for k, v in s.items() if k != "params"} for s in listed], fmt, title=title)
    emit_rows(params, fmt, title="Parameters")
    out.print(f"parameters from: {' + '.join(catalog['sources'])}", markup=False)


def _rows(signals: list[Signal], json_factors: bool = False) -> list[dict[str, Any]]:
    """Signals as records; ``factors`` as JSON text where a flat cell is needed (CSV)."""
    rows = [s.model_dump() for s in signals]
    if json_factors:
        for row in rows:
            row["factors"] = json.dumps(row["factors"], sort_keys=True)
    return rows


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
