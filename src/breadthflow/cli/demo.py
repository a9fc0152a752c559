"""``breadthflow demo``: the main job on the bundled sample data.

It loads the real S&P 500 sample (2009-08-21 → 2010-08-20) into the lake, prints what
was stored and which problems were fixed on the way in, then runs the ``demo`` breadth
pipeline once — fetch (nothing new by then) → breadth → every strategy's signals → a
backtest — and prints its summary. Then it serves the API and dashboard with that
pipeline scheduled (``--no-serve`` stops after the summary).
"""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._common import context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.cli.data import print_fetch_report, run_fetch
from breadthflow.core.errors import NotFoundError
from breadthflow.core.models import FetchReport, IssueKind
from breadthflow.services import data as svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services import signals as signals_svc
from breadthflow.services.context import AppContext
from breadthflow.signals import STRATEGIES

DEMO_PIPELINE = "demo"
DEMO_INTERVAL = "15m"
BACKTEST_STRATEGY = "breadth_composite"
SAMPLE_START = "2009-08-21"
SAMPLE_END = "2010-08-20"
# The sample is one year long: a 252-day high/low window would never fill.
DEMO_HL_WINDOW = 50


def demo(
    universe: Annotated[
        str, typer.Option(help="Universe to load from the sample.")
    ] = "sample-sp500",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json")] = Format.table,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="After the summary, serve the dashboard with the demo pipeline scheduled "
            "(default); --no-serve stops after the summary (scripts, CI).",
        ),
    ] = True,
    port: Annotated[int | None, typer.Option("--port", help="Port of the dashboard.")] = None,
    interval: Annotated[
        str, typer.Option("--interval", help="Schedule of the demo pipeline while serving.")
    ] = DEMO_INTERVAL,
) -> None:
    """Load the sample S&P 500, run the breadth pipeline once (fetch → breadth → signals →
    backtest), print a summary, then serve the dashboard with the pipeline scheduled."""
    request = svc.FetchRequest(
        provider="sample", start=SAMPLE_START, end=SAMPLE_END, universe=universe
    )
    report = run_fetch(request, quiet=fmt is not Format.table)
    if report.symbols_stored < 2:
        print_fetch_report(report, fmt)
        raise typer.Exit(1)
    ctx = context()
    _ensure_pipeline(ctx, universe, interval)
    with err.status("running the demo pipeline: fetch → breadth → signals → backtest …"):
        outcome = pipelines_svc.run_now(ctx, DEMO_PIPELINE)
    run, steps = pipelines_svc.run_detail(ctx, outcome.run_id)
    by_step = {step.name: step for step in steps}
    breadth_step = by_step.get("breadth")
    latest = breadth_step.detail.get("latest", {}) if breadth_step else {}
    signal_rows = _signal_rows(ctx)
    run_row = {
        "run_id": run.run_id,
        "status": run.status,
        "duration_s": run.duration,
        "symbols": run.symbols_processed,
        "signals_new": run.signals_generated,
        "errors": run.error_count,
        "steps": ", ".join(f"{s.name} {s.status}" for s in steps),
    }
    failed = outcome.status in ("failed", "cancelled") or bool(report.failures)
    if fmt is not Format.table:
        emit_record(
            {
                "fetch": report.summary(),
                "run": run_row,
                "breadth_latest": latest,
                "signals": signal_rows,
                "backtest": run.backtest_results,
            },
            fmt,
        )
    else:
        print_fetch_report(report, fmt)
        _print_quality(report)
        out.print()
        emit_record(run_row, fmt, title=f"Demo pipeline run ({outcome.status})")
        if latest:
            emit_record(latest, fmt, title=f"Breadth of {universe} on its last date (hl-window 50)")
        emit_rows(signal_rows, fmt, title="Signals stored by the demo pipeline")
        if run.backtest_results:
            emit_record(
                run.backtest_results,
                fmt,
                title=f"Backtest of {BACKTEST_STRATEGY} on the universe (one account)",
            )
    if failed:
        raise typer.Exit(1)
    if not serve:
        err.print(
            "next: breadthflow serve (dashboard) · breadthflow signals list --type BUY · "
            "breadthflow backtest list · breadthflow pipeline runs demo",
            markup=False,
            highlight=False,
        )
        return
    from breadthflow.cli import serve as serve_cmd

    pipelines_svc.set_active(ctx, DEMO_PIPELINE, True)
    err.print(
        f"serving the dashboard; the demo pipeline runs every {interval} (Ctrl-C stops)",
        markup=False,
        highlight=False,
    )
    serve_cmd.serve(port=port)


def _ensure_pipeline(ctx: AppContext, universe: str, interval: str) -> None:
    """Create or reset the 'demo' pipeline: the sample year, every strategy, paused until
    the dashboard is served (so nothing fires while the summary prints)."""
    strategies = sorted(
        name for name, cls in STRATEGIES.items() if not getattr(cls, "needs_model", False)
    )
    values = {
        "kind": "breadth",
        "mode": "custom_symbols",
        "universe": universe,
        "symbols": [],
        "provider": "sample",
        "schedule": interval,
        "trigger_mode": "periodic",
        "is_active": False,
        "parameters": {
            "start": SAMPLE_START,
            "end": SAMPLE_END,
            "hl_window": DEMO_HL_WINDOW,
            "strategies": strategies,
            "backtest_strategy": BACKTEST_STRATEGY,
        },
    }
    try:
        pipelines_svc.get_pipeline(ctx, DEMO_PIPELINE)
    except NotFoundError:
        pipelines_svc.create_pipeline(ctx, {"name": DEMO_PIPELINE, **values})
        return
    pipelines_svc.update_pipeline(ctx, DEMO_PIPELINE, values)


def _signal_rows(ctx: AppContext) -> list[dict[str, object]]:
    """Per strategy: the signals stored so far and the newest BUY/SELL."""
    rows = []
    for s in signals_svc.summarize_signals(ctx):
        rows.append(
            {
                "strategy": s.strategy,
                "stored": s.signals,
                "BUY": s.buy,
                "SELL": s.sell,
                "HOLD": s.hold,
                "symbols": s.symbols,
                "last_date": s.last_date,
            }
        )
    return rows


def _print_quality(report: FetchReport) -> None:
    counts = report.issue_counts()
    missing = [i for i in report.issues if i.kind is IssueKind.MISSING_SESSION]
    out.print()

    def symbols_with(kind: IssueKind) -> str:
        return (
            ", ".join(sorted({i.symbol or "" for i in report.issues if i.kind is kind})) or "none"
        )

    emit_record(
        {
            "split-adjusted": symbols_with(IssueKind.SPLIT_ADJUSTED),
            "other corporate actions adjusted": symbols_with(IssueKind.CORPORATE_ACTION_ADJUSTED),
            "opens/closes repaired into low–high": counts.get(IssueKind.OPEN_REPAIRED.value, 0)
            + counts.get(IssueKind.CLOSE_REPAIRED.value, 0),
            "rows rejected": counts.get(IssueKind.ROW_REJECTED.value, 0),
            "sessions missing from the file": ", ".join(str(i.date) for i in missing) or "none",
            "symbols with gaps": sum(1 for i in report.issues if i.kind is IssueKind.MISSING_BARS),
        },
        Format.table,
        title="Data quality (details: breadthflow data issues)",
    )
