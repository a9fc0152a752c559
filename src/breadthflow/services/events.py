"""Event-bus services: publish, tail, lag, replay stored bars, relay the outbox.

One implementation for every interface (``breadthflow events …``, the API, tests).
The bus is the one ``BREADTHFLOW_BUS_URL`` names (docs/events.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from breadthflow.bus import TOPICS, Event, EventBus, Message, dlq_topic, open_bus, validate_topic
from breadthflow.bus._base import check_name, split_url
from breadthflow.bus.events import MARKET_DATA, make_event
from breadthflow.bus.outbox import prune as prune_events
from breadthflow.bus.relay import Relay
from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import DateRange, Timeframe, parse_date
from breadthflow.services.context import AppContext
from breadthflow.services.data import resolve_symbols, shown_symbols

_EMBEDDED = {"sqlite", "postgres", "postgresql"}
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)


@contextlib.contextmanager
def bus_session(ctx: AppContext) -> Iterator[EventBus]:
    """The configured bus, closed afterwards. The embedded bus shares ``ctx.db``."""
    url = ctx.settings.bus_url
    scheme, _ = split_url(url)
    bus = open_bus(url, ctx.settings, ctx.db if scheme in _EMBEDDED else None)
    try:
        yield bus
    finally:
        bus.close()


# --- publish -----------------------------------------------------------------------------


def parse_messages(topic: str, lines: Iterable[str]) -> list[Event]:
    """Events from JSON text, one message per non-blank line; every line is checked
    before anything is published.

    >>> [e.type for e in parse_messages("pipeline-events", ['{"type": "x", "data": {}}'])]
    ['x']
    """
    validate_topic(topic)
    found: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise InvalidInputError(
                f"line {number}: invalid JSON ({exc}) — expected one JSON object per line"
            ) from None
        try:
            found.append(make_event(topic, value))
        except InvalidInputError as exc:
            raise InvalidInputError(f"line {number}: {exc.message}") from None
    if not found:
        raise InvalidInputError("no message given — pass 'JSON' or one JSON object per stdin line")
    return found


def publish(ctx: AppContext, topic: str, lines: Iterable[str]) -> list[str]:
    """Publish messages typed by a user (see :func:`parse_messages`); return event ids."""
    events = parse_messages(topic, lines)
    with bus_session(ctx) as bus:
        return bus.publish(topic, events)


# --- tail --------------------------------------------------------------------------------


def tail(
    ctx: AppContext,
    topic: str,
    on_message: Callable[[Message], None],
    *,
    group: str | None = None,
    from_beginning: bool = False,
    limit: int | None = None,
    idle_timeout: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Follow ``topic``: call ``on_message`` for each message, then acknowledge it.

    Without ``group`` a throw-away group is used (and deleted at the end), so tailing
    takes nothing away from real consumers. ``from_beginning`` starts a new group at the
    oldest retained message instead of at new ones. Stops after ``limit`` messages,
    after ``idle_timeout`` seconds without one, or when ``stop`` is set; returns the count.
    """
    validate_topic(topic)
    if limit is not None and limit < 1:
        raise InvalidInputError(f"invalid limit {limit} — expected 1 or more")
    if idle_timeout is not None and idle_timeout <= 0:
        raise InvalidInputError(f"invalid idle timeout {idle_timeout} — expected seconds > 0")
    ephemeral = group is None
    name = group or f"tail-{uuid.uuid4().hex[:12]}"
    check_name("group", name)
    start = "earliest" if from_beginning else "latest"
    seen = 0
    with bus_session(ctx) as bus:
        try:
            last = time.monotonic()
            while not (stop and stop.is_set()):
                want = 100 if limit is None else min(100, limit - seen)
                batch = bus.consume(topic, name, "tail", want, 0.5, start=start)
                for message in batch:
                    on_message(message)
                bus.ack(topic, name, batch)
                seen += len(batch)
                if limit is not None and seen >= limit:
                    break
                if batch:
                    last = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    break
        finally:
            if ephemeral:
                with contextlib.suppress(Exception):
                    bus.delete_group(topic, name)
    return seen


# --- lag ---------------------------------------------------------------------------------


class GroupLag(BaseModel):
    topic: str
    group: str
    lag: int


def lag(ctx: AppContext, topic: str | None = None, group: str | None = None) -> list[GroupLag]:
    """Unacknowledged messages per (topic, consumer group): of ``topic`` (default: the
    BreadthFlow topics and their dead-letter topics) and ``group`` (default: every group)."""
    topics = (
        [validate_topic(topic)]
        if topic
        else [t for base in TOPICS for t in (base, dlq_topic(base))]
    )
    if group is not None:
        check_name("group", group)
    rows: list[GroupLag] = []
    with bus_session(ctx) as bus:
        for name in topics:
            groups = bus.groups(name)
            if group is not None:
                groups = [g for g in groups if g == group]
            rows += [GroupLag(topic=name, group=g, lag=bus.lag(name, g)) for g in groups]
    if group is not None and not rows:
        where = f"topic '{topic}'" if topic else "any BreadthFlow topic"
        raise NotFoundError(f"no consumer group '{group}' on {where}")
    return rows


# --- replay ------------------------------------------------------------------------------


def parse_speed(value: str | None) -> float | None:
    """``"60x"`` → 60.0 (sixty times real time); ``"max"`` or ``None`` → no waiting.

    >>> parse_speed("60x"), parse_speed("max")
    (60.0, None)
    """
    if value is None or value.strip().lower() in ("max", "0", "0x"):
        return None
    match = _SPEED_RE.fullmatch(value)
    speed = float(match.group(1)) if match else 0.0
    if not speed > 0:
        raise InvalidInputError(
            f"invalid speed '{value}' — expected a multiple of real time such as 60x, 1x, "
            "0.5x, or max (no waiting)"
        )
    return speed


class ReplayReport(BaseModel):
    topic: str
    symbols: int
    bars: int
    timestamps: int
    first: str
    last: str
    speed: float | None
    seconds: float


def _moment(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def replay(
    ctx: AppContext,
    start: str | dt.date,
    end: str | dt.date,
    symbols: str | list[str] | None = None,
    universe: str | None = None,
    speed: str | None = None,
    timeframe: str = "1d",
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Publish stored bars to ``market-data`` in time order (one batch per timestamp).

    With ``speed`` ``"60x"`` the wait between two timestamps is their distance in time
    divided by 60 (a daily replay at ``86400x`` sends a day a second); by default bars
    go out as fast as the bus takes them. Each event is ``type="bar"`` with ``data``
    ``{symbol, timeframe, date, open, high, low, close, volume}``.
    """
    began = time.perf_counter()
    factor = parse_speed(speed)
    frame_tf = Timeframe.parse(timeframe)
    period = DateRange.parse(start, end)
    wanted = resolve_symbols(ctx, symbols, universe)
    what = f"universe '{universe}'" if universe else f"symbols {shown_symbols(wanted)}"
    read_end: dt.date | dt.datetime = period.end
    read_start: dt.date | dt.datetime = period.start
    if frame_tf.is_intraday:
        read_start = _moment(period.start)
        read_end = _moment(period.end) + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    bars = ctx.lake.read(
        wanted, frame_tf, read_start, read_end,
        columns=["symbol", "date", "open", "high", "low", "close", "volume"],
    )  # fmt: skip
    if bars.is_empty():
        raise NotFoundError(
            f"no stored {frame_tf.value} bars for {what} between {period.start} and "
            f"{period.end} — fetch them first with `breadthflow data fetch`"
        )
    bars = bars.sort(["date", "symbol"])
    published = 0
    stamps = 0
    previous: dt.datetime | None = None
    with bus_session(ctx) as bus:
        for (stamp,), group in bars.group_by("date", maintain_order=True):
            moment = _moment(stamp)
            if factor is not None and previous is not None:
                sleep((moment - previous).total_seconds() / factor)
            previous = moment
            events = [_bar_event(row, frame_tf) for row in group.iter_rows(named=True)]
            bus.publish(MARKET_DATA, events)
            published += len(events)
            stamps += 1
            if on_batch is not None:
                on_batch(len(events))
    dates = bars.get_column("date")
    return ReplayReport(
        topic=MARKET_DATA,
        symbols=bars.get_column("symbol").n_unique(),
        bars=published,
        timestamps=stamps,
        first=_iso(dates.min()),
        last=_iso(dates.max()),
        speed=factor,
        seconds=round(time.perf_counter() - began, 3),
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


def _bar_event(row: dict[str, Any], timeframe: Timeframe) -> Event:
    return Event(
        type="bar",
        source="breadthflow.replay",
        data={
            "symbol": row["symbol"],
            "timeframe": timeframe.value,
            "date": _iso(row["date"]),
            **{k: row[k] for k in ("open", "high", "low", "close", "volume")},
        },
    )


# --- retention -------------------------------------------------------------------------


def prune(ctx: AppContext, before: str | dt.date) -> int:
    """Delete events recorded in the metadata DB before ``before`` (a date, UTC midnight).

    With the embedded bus this trims the bus itself (a group that had not read them yet
    never will); with an external bus only events already relayed are deleted, and the
    external bus keeps its own retention."""
    day = parse_date(before, "--before date")
    cutoff = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    scheme, _ = split_url(ctx.settings.bus_url)
    return prune_events(ctx.db, cutoff, relayed_only=scheme not in _EMBEDDED)


# --- relay -------------------------------------------------------------------------------


def relay(ctx: AppContext, *, once: bool = False, stop: threading.Event | None = None) -> int:
    """Forward events recorded in the metadata DB to the external bus (the outbox relay).
    ``once`` forwards what is pending now and returns; otherwise runs until ``stop``."""
    with bus_session(ctx) as bus:
        forwarder = Relay(ctx.db, bus)
        if once:
            return forwarder.drain()
        forwarder.run(stop or threading.Event())
    return 0
