"""The :class:`EventBus` interface, the delivered :class:`Message`, and the adapter registry."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl

from breadthflow.bus.events import (
    DLQ_SUFFIX,
    Event,
    dlq_topic,
    normalise_data,
    parse_event,
    validate_topic,
)
from breadthflow.core.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from breadthflow.core.config import Settings
    from breadthflow.store.db import Database

log = logging.getLogger(__name__)

Start = Literal["earliest", "latest"]
#: Characters of the original payload kept in a dead letter.
_DLQ_PAYLOAD_CHARS = 100_000
#: Seconds an un-acknowledged message stays with its consumer before redelivery.
DEFAULT_VISIBILITY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Message:
    """One delivered event. Pass it (or its ``id``) to :meth:`EventBus.ack` when done."""

    topic: str
    #: The adapter's delivery id: log sequence (sql), entry id (redis),
    #: ``partition:offset`` (kafka), stream sequence (nats).
    id: str
    event: Event
    #: 1 on first delivery, more on redelivery (None when the bus cannot tell).
    deliveries: int | None = None


@dataclass(frozen=True)
class RawMessage:
    """What an adapter fetched, before decoding (adapters only)."""

    id: str
    payload: bytes | str
    deliveries: int | None = None


def _ids(messages: Iterable[Message | str]) -> list[str]:
    return [m.id if isinstance(m, Message) else str(m) for m in messages]


class EventBus(ABC):
    """Publish events to topics; consume them in consumer groups; acknowledge; measure lag.

    Delivery is at-least-once everywhere: a message is handed to one consumer of a
    group, and comes back (to any consumer of the group) when it is not acknowledged
    within the visibility timeout, or after the consumer goes away. Consumers must
    therefore be idempotent (every event carries a unique ``id``). A message that is not
    a valid event goes to ``<topic>.dlq`` with the reason and is acknowledged; the
    consumer never sees it and carries on.

    >>> bus = open_bus("sqlite", settings)                                # doctest: +SKIP
    >>> bus.publish("trading-signals", [Event(type="scan", data={"tickers": []})])
    >>> batch = bus.consume("trading-signals", "dispatcher", "host-1", 20, timeout=0.5)
    >>> bus.ack("trading-signals", "dispatcher", batch)
    """

    #: The URL the bus was opened with (no password).
    url: str = ""
    #: True when events live in the metadata DB (no relay needed).
    embedded: bool = False
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT

    # --- publishing ----------------------------------------------------------------------

    def publish(
        self, topic: str, events: Sequence[Event], *, session: Session | None = None
    ) -> list[str]:
        """Publish a batch in order; return the event ids.

        With ``session`` (a metadata-DB transaction), the events are written in that
        transaction — to the bus itself when it is embedded, else to the outbox for
        the relay — so they exist if and only if the caller's change commits.
        """
        validate_topic(topic)
        checked: list[Event] = []
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"expected Event, got {type(event).__name__}")
            # Refuse here what every consumer would dead-letter (a bad trading signal).
            data = normalise_data(topic, event.data)
            checked.append(event if data is event.data else event.model_copy(update={"data": data}))
        events = checked
        if not events:
            return []
        if session is not None:
            from breadthflow.bus.outbox import record

            record(session, topic, events)
        else:
            self._publish_raw(topic, [(e.id, e.to_json()) for e in events])
        return [e.id for e in events]

    def publish_raw(self, topic: str, payloads: Sequence[bytes | str]) -> None:
        """Publish payloads as they are, unchecked — what a foreign producer would send.

        For bridges and tests; consumers dead-letter whatever is not a valid event.
        """
        validate_topic(topic)
        if payloads:
            self._publish_raw(topic, [(None, p) for p in payloads])

    # --- consuming -----------------------------------------------------------------------

    def consume(
        self,
        topic: str,
        group: str,
        consumer: str,
        max_messages: int = 100,
        timeout: float = 1.0,
        *,
        start: Start = "earliest",
    ) -> list[Message]:
        """Up to ``max_messages`` for ``consumer`` of ``group``, waiting up to ``timeout``
        seconds for the first; ``[]`` when nothing came. Consumers of one group share
        the messages (each goes to one of them). A group seen for the first time starts
        at the ``earliest`` retained message or only sees messages published from now
        on (``latest``). Invalid messages go to the dead-letter topic and are skipped.
        """
        validate_topic(topic)
        check_name("group", group)
        check_name("consumer", consumer)
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise InvalidInputError(f"invalid max_messages {max_messages!r} — expected 1 or more")
        if isinstance(timeout, bool) or timeout < 0:
            raise InvalidInputError(f"invalid timeout {timeout!r} — expected seconds >= 0")
        raws = self._fetch(topic, group, consumer, max_messages, float(timeout), start)
        messages: list[Message] = []
        rejected: list[str] = []
        for raw in raws:
            try:
                event = parse_event(topic, raw.payload)
            except InvalidInputError as exc:
                self._dead_letter(topic, group, raw.id, raw.payload, exc.message)
                rejected.append(raw.id)
                continue
            messages.append(Message(topic, raw.id, event, raw.deliveries))
        if rejected:
            self._ack(topic, group, rejected)
        return messages

    def ack(self, topic: str, group: str, messages: Iterable[Message | str]) -> None:
        """Acknowledge processed messages (or their ids): they are not delivered again."""
        ids = _ids(messages)
        if ids:
            self._ack(validate_topic(topic), group, ids)

    def dead_letter(self, topic: str, group: str, message: Message, reason: str) -> None:
        """Give up on a valid but unprocessable message: send it to ``<topic>.dlq`` with
        ``reason``, and acknowledge it."""
        self._dead_letter(topic, group, message.id, message.event.to_json(), reason)
        self._ack(topic, group, [message.id])

    def _dead_letter(
        self, topic: str, group: str, message_id: str, payload: bytes | str, reason: str
    ) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        truncated = len(text) > _DLQ_PAYLOAD_CHARS
        if truncated:  # keep the letter itself well under the size limit
            text = text[:_DLQ_PAYLOAD_CHARS]
        if topic.endswith(DLQ_SUFFIX):
            # A broken dead letter is dropped rather than nested (.dlq.dlq…).
            log.warning("dropping invalid message %s on %s: %s", message_id, topic, reason)
            return
        letter = Event(
            type="dead-letter",
            source="breadthflow.bus",
            data={
                "topic": topic,
                "group": group,
                "message_id": message_id,
                "reason": reason,
                "payload": text,
                "truncated": truncated,
            },
        )
        log.warning("message %s on %s dead-lettered: %s", message_id, topic, reason)
        self._publish_raw(dlq_topic(topic), [(letter.id, letter.to_json())])

    # --- introspection -------------------------------------------------------------------

    @abstractmethod
    def lag(self, topic: str, group: str) -> int:
        """Messages of ``topic`` that ``group`` has not acknowledged yet (delivered or not).
        A group that does not exist yet would have to read the whole topic."""

    @abstractmethod
    def groups(self, topic: str) -> list[str]:
        """Consumer groups of ``topic``, sorted."""

    @abstractmethod
    def delete_group(self, topic: str, group: str) -> None:
        """Forget a consumer group and its position (no error when absent)."""

    def close(self) -> None:  # noqa: B027 - adapters without resources need nothing
        """Release connections. Un-acknowledged messages will be redelivered."""

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what an adapter implements ------------------------------------------------------

    @abstractmethod
    def _publish_raw(self, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]) -> None:
        """Append ``(event id or None, payload)`` pairs to ``topic`` in order."""

    @abstractmethod
    def _fetch(
        self,
        topic: str,
        group: str,
        consumer: str,
        max_messages: int,
        timeout: float,
        start: Start,
    ) -> list[RawMessage]:
        """Deliver up to ``max_messages`` (redeliveries of timed-out ones included)."""

    @abstractmethod
    def _ack(self, topic: str, group: str, ids: Sequence[str]) -> None: ...


def check_name(kind: str, value: str) -> None:
    # Group and consumer names become Redis/Kafka/NATS identifiers: keep them plain.
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 100
        or not all(c.isalnum() or c in "-_" for c in value)
    ):
        raise InvalidInputError(
            f"invalid {kind} name '{value}' — expected 1-100 letters, digits, '-' or '_'"
        )


# --- the registry ----------------------------------------------------------------------

BusFactory = Callable[[str, dict[str, str], "Settings", "Database | None"], EventBus]
_REGISTRY: dict[str, BusFactory] = {}


def register_bus(*schemes: str) -> Callable[[BusFactory], BusFactory]:
    """Register an adapter factory ``(url, options, settings, db) -> EventBus``."""

    def decorate(factory: BusFactory) -> BusFactory:
        for scheme in schemes:
            _REGISTRY[scheme] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    # Importing registers them; client libraries load only when their bus is opened.
    from breadthflow.bus import kafka, nats, redis, sql  # noqa: F401


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """``redis://h:6379/0?visibility_timeout=5`` → ``("redis", {"visibility_timeout": "5"})``;
    bare words (``sqlite``, ``postgres?visibility_timeout=5``) are schemes too."""
    text = url.strip()
    head, _, query = text.partition("?")
    scheme = head.split("://", 1)[0].lower() if "://" in head else head.lower()
    return scheme, dict(parse_qsl(query, keep_blank_values=True))


def float_option(options: dict[str, str], name: str, default: float) -> float:
    """A positive number from the bus URL's query string."""
    raw = options.pop(name, None)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"invalid bus option {name}={raw!r} — expected a number above 0")
    return value


def reject_unknown_options(url: str, options: dict[str, str]) -> None:
    if options:
        raise ConfigError(f"unknown bus option(s) {', '.join(sorted(options))} in '{url}'")


def open_bus(url: str, settings: Settings, db: Database | None = None) -> EventBus:
    """Open the bus named by ``url`` (``BREADTHFLOW_BUS_URL``).

    ``db`` is the metadata DB of the embedded bus (default: the one in ``settings``).
    """
    from breadthflow.core.config import mask_url

    _load_builtins()
    scheme, options = split_url(url)
    factory = _REGISTRY.get(scheme)
    if factory is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unsupported bus URL '{mask_url(url)}' — expected one of {known}")
    return factory(url, options, settings, db)


def known_schemes() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)
