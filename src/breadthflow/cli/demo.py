"""``breadthflow demo``: the main job on the bundled sample data.

Today it loads the real S&P 500 sample (2009-08-21 → 2010-08-20) into the lake and
prints what was stored and which problems were fixed on the way in. Later milestones
extend it with breadth, signals, a backtest and the dashboard.
"""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._output import Format, emit_record, err, out
from breadthflow.cli.data import print_fetch_report, run_fetch
from breadthflow.core.models import IssueKind
from breadthflow.services import data as svc

SAMPLE_START = "2009-08-21"
SAMPLE_END = "2010-08-20"


def demo(
    universe: Annotated[
        str, typer.Option(help="Universe to load from the sample.")
    ] = "sample-sp500",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json")] = Format.table,
) -> None:
    """Load the sample S&P 500 universe into the lake and summarise it."""
    request = svc.FetchRequest(
        provider="sample", start=SAMPLE_START, end=SAMPLE_END, universe=universe
    )
    report = run_fetch(request, quiet=fmt is not Format.table)
    if fmt is not Format.table:
        print_fetch_report(report, fmt)
        raise typer.Exit(1 if report.failures else 0)
    print_fetch_report(report, fmt)
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
    err.print(
        "next: breadthflow data summary · breadthflow data export --universe demo_small "
        f"--start {SAMPLE_START} --end {SAMPLE_END} --output bars.csv",
        markup=False,
        highlight=False,
    )
    if report.failures:
        raise typer.Exit(1)
