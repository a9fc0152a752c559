"""``breadthflow status``: the same health report as ``GET /health``, from the terminal."""

from __future__ import annotations

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, out

COLUMNS = ("check", "status", "detail", "ms")


def status(fmt: FormatOpt = Format.table) -> None:
    """Health of every backend, the runner and workers (as GET /health); exit 1 if not ok."""
    from breadthflow.services.health import check_health

    report = check_health(context())
    if fmt is Format.json:
        emit_record(report.model_dump(mode="json"), fmt)
    else:
        rows = [
            {"check": c.name, "status": c.status, "detail": c.detail, "ms": c.latency_ms}
            for c in report.checks
        ]
        emit_rows(rows, fmt, title=f"BreadthFlow {report.version}: {report.status}",
                  columns=COLUMNS)  # fmt: skip
        if fmt is Format.table:
            out.print(f"overall: {report.status}", markup=False, highlight=False)
    if any(c.status != "ok" for c in report.checks):
        raise typer.Exit(1)
