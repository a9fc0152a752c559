"""``breadthflow backtest …``: run, optimise, walk forward, Monte Carlo; list and show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from breadthflow.cli._common import EndOpt, FormatOpt, StartOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._lazy import LazyModule
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.services.context import AppContext
from breadthflow.services.signals import parse_params

# The engine pulls in numba (about a second to import): load it when a backtest runs,
# not on every `breadthflow` start.
svc = LazyModule("breadthflow.services.backtest")

app = typer.Typer(
    help="Backtests of strategy signals: run, optimize, walkforward, montecarlo, list, show "
    "(docs/backtesting.md).",
    no_args_is_help=True,
)

StrategyOpt = Annotated[
    str, typer.Option("--strategy", help="Strategy name (`signals strategies`).")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE (repeatable)."),
]
CashOpt = Annotated[
    float, typer.Option("--cash", help="Starting cash (per symbol unless --portfolio).")
]
FeesOpt = Annotated[float, typer.Option("--fees", help="Proportional fees on traded value.")]
SlippageOpt = Annotated[
    float, typer.Option("--slippage", help="Proportional slippage on traded value.")
]
ExecutionOpt = Annotated[
    str,
    typer.Option(
        "--execution", help="open: fill at the next bar's open; close: at the signal bar's close."
    ),
]
DirectionOpt = Annotated[str, typer.Option("--direction", help="long or longshort.")]
SizingOpt = Annotated[str, typer.Option("--sizing", help="all_in, fixed_fraction or equal_weight.")]
FractionOpt = Annotated[
    float, typer.Option("--fraction", help="Share of equity per entry (fixed_fraction).")
]
MaxPositionsOpt = Annotated[
    int | None, typer.Option("--max-positions", help="Portfolio: at most this many open positions.")
]
StopLossOpt = Annotated[
    float | None, typer.Option("--stop-loss", help="e.g. 0.05 = 5% below entry.")
]
TakeProfitOpt = Annotated[
    float | None, typer.Option("--take-profit", help="e.g. 0.10 = 10% above entry.")
]
TrailingOpt = Annotated[
    float | None, typer.Option("--trailing-stop", help="e.g. 0.08 = 8% below the best close.")
]
IntegerOpt = Annotated[bool, typer.Option("--integer-shares", help="Whole shares only.")]
MarginOpt = Annotated[bool, typer.Option("--margin", help="Allow cash to go negative.")]
PortfolioOpt = Annotated[
    bool,
    typer.Option(
        "--portfolio", help="One account across the universe (market-level strategies always)."
    ),
]
HlOpt = Annotated[int, typer.Option("--hl-window", help="Breadth new-high/low look-back, bars.")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Also write FILE.html.")]
GridOpt = Annotated[
    list[str], typer.Option("--grid", "-g", help="NAME=V1,V2,… or NAME=A:B:STEP (repeatable).")
]
ObjectiveOpt = Annotated[
    str, typer.Option("--objective", help="sharpe, cagr_pct, calmar, sortino, …")
]

STATS_SHOWN = (
    "start",
    "end",
    "equity_final",
    "total_return_pct",
    "buy_hold_return_pct",
    "cagr_pct",
    "volatility_ann_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "max_drawdown_duration_days",
    "exposure_time_pct",
    "n_trades",
    "win_rate_pct",
    "profit_factor",
    "expectancy_pct",
    "sqn",
    "total_fees",
    "n_open_trades",
)


def _study(
    ctx: AppContext,
    strategy: str,
    start: str,
    end: str,
    symbols: str | None,
    universe: str | None,
    param: list[str] | None,
    hl_window: int,
    engine: dict[str, Any],
) -> svc.Study:
    return svc.prepare_study(
        ctx, strategy, start, end, symbols, universe, parse_params(param or []), engine, hl_window
    )


def _engine(**values: Any) -> dict[str, Any]:
    return values


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _print_outcome(outcome: svc.BacktestOutcome, fmt: Format, title: str) -> None:
    if fmt is not Format.table:
        emit_record(outcome.summary(), fmt)
        return
    stats = {k: outcome.stats.get(k) for k in STATS_SHOWN}
    emit_record(stats, fmt, title=title)
    trades = outcome.result.trades
    if trades.height:
        shown = trades.tail(10).select(
            "symbol",
            "direction",
            "entry_date",
            "entry_price",
            "exit_date",
            "exit_price",
            "return_pct",
            "exit_reason",
        )
        emit_rows(shown.to_dicts(), fmt, title=f"Last {shown.height} of {trades.height} trades")
    note = f"stored as backtest #{outcome.id}"
    if outcome.report:
        note += f" · report: {outcome.report}"
    out.print(note + " · --format json for every trade", markup=False, highlight=False)


@app.command("run")
def run(
    strategy: StrategyOpt,
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    param: ParamOpt = None,
    cash: CashOpt = 10_000.0,
    fees: FeesOpt = 0.001,
    slippage: SlippageOpt = 0.0005,
    execution: ExecutionOpt = "open",
    direction: DirectionOpt = "long",
    sizing: SizingOpt = "all_in",
    fraction: FractionOpt = 1.0,
    max_positions: MaxPositionsOpt = None,
    stop_loss: StopLossOpt = None,
    take_profit: TakeProfitOpt = None,
    trailing_stop: TrailingOpt = None,
    integer_shares: IntegerOpt = False,
    margin: MarginOpt = False,
    portfolio: PortfolioOpt = False,
    hl_window: HlOpt = 252,
    report: ReportOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Backtest a strategy over stored bars; prints the stats and stores the run."""
    engine = _engine(
        cash=cash,
        fees=fees,
        slippage=slippage,
        execution=execution,
        direction=direction,
        sizing=sizing,
        fraction=fraction,
        max_positions=max_positions,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=trailing_stop,
        integer_shares=integer_shares,
        margin=margin,
        portfolio=portfolio,
    )
    svc._check_report(report)
    ctx = context()
    study = _study(ctx, strategy, start, end, symbols, universe, param, hl_window, engine)
    outcome = svc.run_backtest_study(ctx, study, report)
    _print_outcome(
        outcome, fmt, f"Backtest #{outcome.id}: {outcome.strategy} on {outcome.universe}"
    )


@app.command("optimize")
def optimize_(
    strategy: StrategyOpt,
    start: StartOpt,
    end: EndOpt,
    grid: GridOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    param: ParamOpt = None,
    objective: ObjectiveOpt = "sharpe",
    refine: Annotated[
        bool, typer.Option("--refine/--no-refine", help="Fine pass around the best.")
    ] = True,
    min_trades: Annotated[
        int, typer.Option("--min-trades", help="Reject results with fewer trades.")
    ] = 0,
    cash: CashOpt = 10_000.0,
    fees: FeesOpt = 0.001,
    slippage: SlippageOpt = 0.0005,
    execution: ExecutionOpt = "open",
    direction: DirectionOpt = "long",
    portfolio: PortfolioOpt = False,
    hl_window: HlOpt = 252,
    report: ReportOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Grid search (coarse, then fine around the best); the best set is stored as a run."""
    engine = _engine(
        cash=cash,
        fees=fees,
        slippage=slippage,
        execution=execution,
        direction=direction,
        portfolio=portfolio,
    )
    svc._check_report(report)
    raw = svc.parse_grid(grid)
    ctx = context()
    study = _study(ctx, strategy, start, end, symbols, universe, param, hl_window, engine)
    typed = svc.typed_grid(study, raw)
    with _progress("optimising") as bar:
        task = bar.add_task("grid", total=None)
        best, found = svc.optimize_study(
            ctx,
            study,
            typed,
            objective,
            refine,
            min_trades,
            report,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if fmt is not Format.table:
        emit_record(
            {
                **best.summary(trades=0),
                "best_params": found.best,
                "ranking": found.table.to_dicts(),
                "skipped": [{"params": p, "reason": r} for p, r in found.skipped],
            },
            fmt,
        )
        return
    emit_rows(
        found.table.head(15).to_dicts(), fmt, title=f"Top of {found.table.height} ({objective})"
    )
    if found.skipped:
        out.print(
            f"{len(found.skipped)} combinations skipped, e.g. {found.skipped[0][1]}",
            markup=False,
            highlight=False,
        )
    _print_outcome(best, fmt, f"Best: {', '.join(f'{k}={v}' for k, v in found.best.items())}")


@app.command("walkforward")
def walkforward(
    strategy: StrategyOpt,
    start: StartOpt,
    end: EndOpt,
    grid: GridOpt,
    train: Annotated[int, typer.Option("--train", help="In-sample window, trading days.")] = 252,
    test: Annotated[int, typer.Option("--test", help="Out-of-sample window, trading days.")] = 63,
    anchored: Annotated[
        bool, typer.Option("--anchored", help="Expanding in-sample windows.")
    ] = False,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    param: ParamOpt = None,
    objective: ObjectiveOpt = "sharpe",
    cash: CashOpt = 10_000.0,
    fees: FeesOpt = 0.001,
    slippage: SlippageOpt = 0.0005,
    execution: ExecutionOpt = "open",
    portfolio: PortfolioOpt = False,
    hl_window: HlOpt = 252,
    report: ReportOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Optimise in-sample, apply out-of-sample, fold after fold; stitch the out-of-sample curve."""
    engine = _engine(
        cash=cash, fees=fees, slippage=slippage, execution=execution, portfolio=portfolio
    )
    svc._check_report(report)
    raw = svc.parse_grid(grid)
    ctx = context()
    study = _study(ctx, strategy, start, end, symbols, universe, param, hl_window, engine)
    typed = svc.typed_grid(study, raw)
    with _progress("walking forward") as bar:
        task = bar.add_task("folds", total=None)
        run_id, found = svc.walk_forward_study(
            ctx,
            study,
            typed,
            train,
            test,
            objective,
            anchored,
            report,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    summary = {
        "id": run_id,
        "in_sample": found.in_sample,
        "out_of_sample": found.out_of_sample,
        "degradation": found.degradation,
        "stats": found.stats,
        "folds": found.folds.to_dicts(),
    }
    if fmt is not Format.table:
        emit_record(summary, fmt)
        return
    emit_rows(found.folds.to_dicts(), fmt, title=f"Walk-forward folds ({objective})")
    emit_record(
        {k: summary[k] for k in ("in_sample", "out_of_sample", "degradation")}
        | {k: found.stats.get(k) for k in STATS_SHOWN},
        fmt,
        title=f"Out-of-sample, stitched (stored as backtest #{run_id})",
    )


@app.command("montecarlo")
def montecarlo(
    strategy: StrategyOpt,
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    param: ParamOpt = None,
    paths: Annotated[int, typer.Option("--paths", help="Number of resampled paths.")] = 1_000,
    method: Annotated[
        str, typer.Option("--method", help="trades or daily (block bootstrap).")
    ] = "trades",
    block: Annotated[int, typer.Option("--block", help="Block length for daily, days.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    ruin: Annotated[float, typer.Option("--ruin", help="Loss fraction counted as ruin.")] = 0.5,
    cash: CashOpt = 10_000.0,
    fees: FeesOpt = 0.001,
    slippage: SlippageOpt = 0.0005,
    execution: ExecutionOpt = "open",
    portfolio: PortfolioOpt = False,
    hl_window: HlOpt = 252,
    report: ReportOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Backtest, then resample trades or daily returns: final return and drawdown spread, ruin."""
    engine = _engine(
        cash=cash, fees=fees, slippage=slippage, execution=execution, portfolio=portfolio
    )
    svc._check_report(report)
    ctx = context()
    study = _study(ctx, strategy, start, end, symbols, universe, param, hl_window, engine)
    outcome, mc = svc.monte_carlo_study(ctx, study, paths, method, block, seed, ruin, report)
    plain = {k: v for k, v in mc.items() if k != "fan"}
    if fmt is not Format.table:
        emit_record({**outcome.summary(trades=0), "montecarlo": plain}, fmt)
        return
    rows = [{"measure": name, **plain[name]} for name in ("final_return_pct", "max_drawdown_pct")]
    emit_rows(rows, fmt, title=f"Monte Carlo ({method}, {paths:,} paths, seed {seed})")
    out.print(
        f"probability of ruin (losing {ruin:.0%} or more): {plain['prob_ruin']:.1%}",
        markup=False,
        highlight=False,
    )
    _print_outcome(outcome, fmt, f"Backtest #{outcome.id}")


@app.command("list")
def list_(
    strategy: Annotated[str | None, typer.Option("--strategy", help="Only this strategy.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="run, optimize, walkforward, montecarlo.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many first.")] = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Stored backtests, newest first."""
    rows, total = svc.list_backtests(context(), limit, offset, strategy, kind)
    records = [
        {
            "id": b.id,
            "kind": b.kind,
            "strategy": b.strategy,
            "universe": b.universe,
            "start": b.start,
            "end": b.end,
            "status": b.status,
            "total_return_pct": (b.stats or {}).get("total_return_pct"),
            "sharpe": (b.stats or {}).get("sharpe"),
            "n_trades": (b.stats or {}).get("n_trades"),
            "created_at": b.created_at,
        }
        for b in rows
    ]
    emit_rows(records, fmt, title="Backtests", columns=list(records[0]) if records else ["id"])
    if fmt is Format.table:
        out.print(f"{len(records)} of {total} stored", markup=False, highlight=False)


@app.command("show")
def show(
    backtest_id: Annotated[int, typer.Argument(help="Backtest id (`backtest list`).")],
    fmt: FormatOpt = Format.table,
) -> None:
    """One stored backtest: inputs, stats and trades."""
    summary, frames = svc.show_backtest(context(), backtest_id)
    trades = frames.get("trades")
    if fmt is not Format.table:
        record = summary.model_dump()
        record["trades"] = trades.to_dicts() if trades is not None else []
        emit_record(record, fmt)
        return
    emit_record(
        {k: v for k, v in summary.model_dump().items() if k not in ("stats", "symbols")}
        | {"symbols": len(summary.symbols)},
        fmt,
        title=f"Backtest #{summary.id}",
    )
    if summary.stats:
        shown = {k: summary.stats.get(k) for k in STATS_SHOWN if k in summary.stats}
        emit_record(shown or summary.stats, fmt, title="Stats")
    if trades is not None and trades.height:
        emit_rows(trades.tail(10).to_dicts(), fmt, title=f"Last 10 of {trades.height} trades")
