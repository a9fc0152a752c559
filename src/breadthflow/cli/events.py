"""``breadthflow events …``: publish, tail, lag, replay and relay (docs/events.md).

Like the Kafka console tools: ``events publish TOPIC 'JSON'`` (or one message per stdin
line), ``events tail TOPIC [--from-beginning]``, ``events lag``, plus ``events replay`` of
stored bars to ``market-data`` and ``events relay`` for external buses.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from breadthflow.bus import Message
from breadthflow.cli._common import EndOpt, FormatOpt, StartOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.core.errors import InvalidInputError
from breadthflow.services import events as svc

app = typer.Typer(
    help="The event bus: publish, tail, lag, replay bars, relay the outbox.",
    no_args_is_help=True,
)

TopicArg = Annotated[str, typer.Argument(help="Topic, e.g. trading-signals or market-data.")]


@app.command("publish")
def publish(
    topic: TopicArg,
    message: Annotated[
        str | None,
        typer.Argument(help="One JSON message; omit (or '-') to read one message per stdin line."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Publish JSON messages to a topic (an envelope, the tickers shape, or any object)."""
    lines = sys.stdin if message in (None, "-") else [message]
    ids = svc.publish(context(), topic, lines)
    if fmt is Format.table:
        out.print(f"published {len(ids)} event(s) to {topic}", markup=False, highlight=False)
        for event_id in ids:
            out.print(event_id, markup=False, highlight=False)
    else:
        emit_record({"topic": topic, "published": len(ids), "ids": ids}, fmt)


def _line(message: Message, fmt: Format) -> str:
    event = message.event
    if fmt is Format.json:
        return json.dumps(
            {"topic": message.topic, "id": message.id, "event": event.model_dump(mode="json")},
            ensure_ascii=False,
        )
    stamp = event.time.strftime("%Y-%m-%d %H:%M:%S")
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"{stamp}  {message.topic}  {message.id}  {event.type}  {data}"


@app.command("tail")
def tail(
    topic: TopicArg,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained message.")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option("--group", "-g", help="Consume as this group (acknowledges what it shows)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", help="Stop after this many messages.")
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option("--idle-timeout", help="Stop after this many seconds without a message."),
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="table (one line each) or json (NDJSON).")
    ] = Format.table,
) -> None:
    """Print messages of a topic as they arrive (Ctrl-C to stop)."""
    if fmt is Format.csv:  # nested event data has no flat CSV form
        raise InvalidInputError("--format csv does not fit `events tail` — use table or json")

    def show(message: Message) -> None:
        typer.echo(_line(message, fmt))

    try:
        count = svc.tail(
            context(), topic, show, group=group, from_beginning=from_beginning,
            limit=limit, idle_timeout=idle_timeout,
        )  # fmt: skip
    except KeyboardInterrupt:
        return
    err.print(f"{count} message(s)", markup=False, highlight=False)


@app.command("lag")
def lag(
    topic: Annotated[str | None, typer.Option("--topic", "-t", help="Only this topic.")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Only this group.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Messages not yet acknowledged, per topic and consumer group."""
    rows = [r.model_dump() for r in svc.lag(context(), topic, group)]
    emit_rows(rows, fmt, title="Consumer lag", columns=("topic", "group", "lag"))


@app.command("replay")
def replay(
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    speed: Annotated[
        str,
        typer.Option("--speed", help="Multiple of real time (60x) or max (no waiting)."),
    ] = "max",
    timeframe: Annotated[
        str, typer.Option("--timeframe", "-t", help="Bar interval: 1m, 5m, 15m, 1h or 1d.")
    ] = "1d",
    fmt: FormatOpt = Format.table,
) -> None:
    """Publish stored bars to market-data in time order (for testing streaming consumers)."""
    report = svc.replay(context(), start, end, symbols, universe, speed, timeframe)
    emit_record(report.model_dump(), fmt, title="Replay")


@app.command("prune")
def prune(
    before: Annotated[
        str, typer.Option("--before", help="Delete events recorded before this date.")
    ],
    fmt: FormatOpt = Format.table,
) -> None:
    """Delete old events from the metadata DB (the embedded log, or the relayed outbox)."""
    emit_record({"deleted": svc.prune(context(), before)}, fmt)


@app.command("relay")
def relay(
    once: Annotated[
        bool, typer.Option("--once", help="Forward what is pending now, then exit.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Forward events recorded in the metadata DB to the external bus (Ctrl-C to stop)."""
    try:
        sent = svc.relay(context(), once=once)
    except KeyboardInterrupt:
        return
    emit_record({"relayed": sent}, fmt)
