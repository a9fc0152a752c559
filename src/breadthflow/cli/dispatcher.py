"""``breadthflow dispatcher``: run the trigger dispatcher alone, or show how it is doing."""

from __future__ import annotations

from typing import Annotated

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_rows, err

app = typer.Typer(
    help="Trigger dispatcher: trading signals → runs of signal-mode pipelines (docs/triggers.md).",
    invoke_without_command=True,
)


@app.callback()
def dispatcher(
    typer_ctx: typer.Context,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Signals per batch (default 20).")
    ] = None,
    batch_timeout: Annotated[
        float | None, typer.Option("--batch-timeout", help="Seconds to fill a batch (0.5).")
    ] = None,
    cache_refresh: Annotated[
        float | None, typer.Option("--cache-refresh", help="Seconds between index rebuilds (30).")
    ] = None,
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="This instance's name (default host-pid).")
    ] = None,
) -> None:
    """Consume trading-signals and queue runs until SIGTERM/Ctrl-C (several instances share
    the load through one consumer group)."""
    if typer_ctx.invoked_subcommand is not None:
        return
    from breadthflow.pipelines.shutdown import GracefulShutdown
    from breadthflow.services import triggers as svc

    ctx = context()
    config = svc.dispatcher_config(
        ctx, batch_size=batch_size, batch_timeout=batch_timeout, cache_refresh=cache_refresh
    )
    shutdown = GracefulShutdown()
    shutdown.install()
    err.print(
        f"dispatcher consuming {config.topic} (group {config.group}, batches of "
        f"{config.batch_size} or {config.batch_timeout:g} s) on {ctx.settings.bus_url} — "
        "Ctrl-C to stop"
    )
    try:
        done = svc.run_dispatcher(
            ctx,
            shutdown,
            consumer,
            batch_size=batch_size,
            batch_timeout=batch_timeout,
            cache_refresh=cache_refresh,
        )
    finally:
        shutdown.restore()
    m = done.metrics
    err.print(
        f"dispatcher stopped: {m.received} received, {m.matched} matched, "
        f"{m.enqueued} enqueued, {m.skipped} skipped"
    )


@app.command("status")
def status(fmt: FormatOpt = Format.table) -> None:
    """Dispatchers that reported recently, with their counters and latency."""
    from breadthflow.services import triggers as svc

    rows = svc.dispatcher_status(context())
    if not rows and fmt is Format.table:
        err.print("no dispatcher has reported (start one with `breadthflow dispatcher`)")
        return
    columns = ["consumer", "alive", "pid", "pipelines", "received", "matched", "enqueued",
               "skipped", "invalid", "consumer_lag", "batch_latency_p50"]  # fmt: skip
    if fmt is not Format.table:
        columns = list(rows[0]) if rows else columns
    emit_rows(rows, fmt, title="Dispatchers", columns=columns)
