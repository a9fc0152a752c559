"""``breadthflow demo``: the main job on the bundled sample data.

It loads the real S&P 500 sample (2009-08-21 → 2010-08-20) into the lake, prints what
was stored and which problems were fixed on the way in, computes the universe's breadth
and generates every registered strategy's signals over the year. Later milestones
extend it with a backtest and the dashboard.
"""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._common import context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.cli.data import print_fetch_report, run_fetch
from breadthflow.core.models import FetchReport, IssueKind
from breadthflow.services import breadth as breadth_svc
from breadthflow.services import data as svc
from breadthflow.services import signals as signals_svc
from breadthflow.signals import STRATEGIES

SAMPLE_START = "2009-08-21"
SAMPLE_END = "2010-08-20"
# The sample is one year long: a 252-day high/low window would never fill.
DEMO_HL_WINDOW = 50
BREADTH_SHOWN = (
    "date", "advances", "declines", "ad_line", "mcclellan_osc", "mcclellan_sum",
    "pct_above_sma50", "pct_above_sma200", "new_highs", "new_lows", "trin", "zbt",
)  # fmt: skip


def demo(
    universe: Annotated[
        str, typer.Option(help="Universe to load from the sample.")
    ] = "sample-sp500",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json")] = Format.table,
) -> None:
    """Load the sample S&P 500 into the lake, measure its breadth, generate signals."""
    request = svc.FetchRequest(
        provider="sample", start=SAMPLE_START, end=SAMPLE_END, universe=universe
    )
    report = run_fetch(request, quiet=fmt is not Format.table)
    if report.symbols_stored < 2:
        print_fetch_report(report, fmt)
        raise typer.Exit(1)
    ctx = context()
    breadth = breadth_svc.compute_breadth(
        ctx, SAMPLE_START, SAMPLE_END, universe=universe, hl_window=DEMO_HL_WINDOW
    )
    latest = breadth.select(BREADTH_SHOWN).row(-1, named=True)
    batches = [
        signals_svc.generate_signals(
            ctx, name, SAMPLE_START, SAMPLE_END, universe=universe, hl_window=DEMO_HL_WINDOW
        )
        for name in sorted(STRATEGIES)
    ]
    signal_rows = [
        {"strategy": b.strategy, "stored": b.stored, **b.counts, "latest": _latest(b)}
        for b in batches
    ]
    if fmt is not Format.table:
        summary = report.summary()
        emit_record({"fetch": summary, "breadth_latest": latest, "signals": signal_rows}, fmt)
        raise typer.Exit(1 if report.failures else 0)
    print_fetch_report(report, fmt)
    _print_quality(report)
    out.print()
    emit_record(latest, fmt, title=f"Breadth of {universe} on its last date (hl-window 50)")
    emit_rows(signal_rows, fmt, title="Signals generated over the year and stored")
    err.print(
        f"next: breadthflow breadth compute --universe {universe} --start {SAMPLE_START} "
        f"--end {SAMPLE_END} --hl-window {DEMO_HL_WINDOW} · breadthflow signals list "
        "--type BUY · breadthflow signals strategies",
        markup=False,
        highlight=False,
    )
    if report.failures:
        raise typer.Exit(1)


def _latest(batch: signals_svc.SignalBatch) -> str:
    """The newest non-HOLD signal of a batch, else its newest row, as one short text."""
    shown = next((s for s in batch.latest if s.signal_type != "HOLD"), None)
    shown = shown or (batch.latest[0] if batch.latest else None)
    if shown is None:
        return "—"
    return f"{shown.date} {shown.symbol} {shown.signal_type.value} ({shown.confidence:.2f})"


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
