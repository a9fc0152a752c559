"""``breadthflow alerts …``: fired alert rules — list them, acknowledge them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_rows, out
from breadthflow.core.errors import InvalidInputError
from breadthflow.services import alerts as svc

app = typer.Typer(
    help="Alerts: failed runs, error rates, slow runs, late pipelines (docs/pipelines.md#alerts).",
    invoke_without_command=True,
)

PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Acknowledged alerts too.")]
LimitOpt = Annotated[int, typer.Option("--limit", help="At most this many, newest first.")]
COLUMNS = ("id", "created_at", "pipeline", "rule", "severity", "message", "run_id",
           "acknowledged_at")  # fmt: skip
#: A table keeps to what fits a terminal; JSON and CSV carry every column.
TABLE_COLUMNS = ("id", "created_at", "pipeline", "rule", "severity", "message")


def _show(pipeline: str | None, include_all: bool, limit: int, fmt: Format) -> None:
    alerts = svc.list_alerts(context(), pipeline, include_all, limit)
    rows: list[dict[str, Any]] = [a.model_dump(exclude={"pipeline_id"}) for a in alerts]
    if fmt is Format.table and not rows:
        what = "alerts" if include_all else "open alerts"
        out.print(f"no {what}", markup=False, highlight=False)
        return
    title = "Alerts" if include_all else "Open alerts"
    columns = COLUMNS
    if fmt is Format.table:
        columns = TABLE_COLUMNS + (("acknowledged_at",) if include_all else ())
    emit_rows(rows, fmt, title=title, columns=columns)


@app.callback()
def alerts(
    ctx: typer.Context,
    pipeline: PipelineOpt = None,
    include_all: AllOpt = False,
    limit: LimitOpt = 100,
    fmt: FormatOpt = Format.table,
) -> None:
    """Open alerts, newest first (`alerts list --all` shows acknowledged ones too)."""
    if ctx.invoked_subcommand is None:
        _show(pipeline, include_all, limit, fmt)


@app.command("list")
def list_(
    pipeline: PipelineOpt = None,
    include_all: AllOpt = False,
    limit: LimitOpt = 100,
    fmt: FormatOpt = Format.table,
) -> None:
    """Open alerts (with --all, acknowledged ones too), newest first."""
    _show(pipeline, include_all, limit, fmt)


@app.command("ack")
def ack(
    alert_id: Annotated[str | None, typer.Argument(help="Alert id (see `alerts`).")] = None,
    ack_all: Annotated[bool, typer.Option("--all", help="Every open alert.")] = False,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="With --all: only this pipeline's.")
    ] = None,
) -> None:
    """Acknowledge an alert (or --all): it leaves the open list and its rule may fire again."""
    ctx = context()
    if ack_all == (alert_id is not None):
        raise InvalidInputError("give an alert id or --all (not both) — `breadthflow alerts`")
    if pipeline is not None and not ack_all:
        raise InvalidInputError("--pipeline goes with --all")
    if ack_all:
        count = svc.acknowledge_all(ctx, pipeline)
        out.print(f"acknowledged {count} alert(s)", markup=False, highlight=False)
        return
    assert alert_id is not None
    try:
        number = int(alert_id)
    except ValueError:
        raise InvalidInputError(
            f"invalid alert id '{alert_id}' — expected a number shown by `breadthflow alerts`"
        ) from None
    alert, was_open = svc.acknowledge(ctx, number)
    if was_open:
        out.print(f"acknowledged alert {alert.id} ({alert.rule})", markup=False, highlight=False)
    else:
        when = f"{alert.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC"
        out.print(
            f"alert {alert.id} was already acknowledged at {when}", markup=False, highlight=False
        )
