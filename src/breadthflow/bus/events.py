"""The event envelope, the topics, and how a raw message becomes an :class:`Event`.

Every message on every bus is one JSON object, the envelope::

    {"id": "9f0c…", "type": "signals.stored", "time": "2026-12-05T14:00:00Z",
     "source": "breadthflow.signals", "data": {...}}

A ``trading-signals`` message may also be the scanner shape
``{"tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 85}]}``; it is
wrapped into an envelope and normalised (upper-case valid tickers, BUY/SELL/HOLD read as
BULLISH/BEARISH/NEUTRAL, confidence a number in 0-100). This module is pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import normalize_symbol

MARKET_DATA = "market-data"
TRADING_SIGNALS = "trading-signals"
PIPELINE_EVENTS = "pipeline-events"
BACKTEST_RESULTS = "backtest-results"
#: The topics BreadthFlow itself publishes to.
TOPICS = (MARKET_DATA, TRADING_SIGNALS, PIPELINE_EVENTS, BACKTEST_RESULTS)
#: A dead-letter topic is the source topic plus this suffix.
DLQ_SUFFIX = ".dlq"

# Lower-case letters, digits, '-', '_' and '.' (not first), so one name is valid as a
# SQL value, a Redis key, a Kafka topic and (after mapping) a NATS stream.
_TOPIC_RE = re.compile(r"^[a-z0-9][a-z0-9_\-.]{0,99}$")
_SIGNAL_WORDS = {
    "BULLISH": "BULLISH",
    "BUY": "BULLISH",
    "BEARISH": "BEARISH",
    "SELL": "BEARISH",
    "NEUTRAL": "NEUTRAL",
    "HOLD": "NEUTRAL",
}
#: Largest payload accepted from a bus, in bytes (bigger ones are dead-lettered).
MAX_PAYLOAD_BYTES = 1_000_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """One event: what happened (``type``), when, who said so, and its ``data``.

    >>> Event(type="run.succeeded", source="breadthflow.pipelines", data={"run_id": "r1"}).type
    'run.succeeded'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_event_id, min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=64)
    time: dt.datetime = Field(default_factory=utcnow)
    source: str = Field("breadthflow", min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _aware_utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("time must carry a UTC offset, e.g. 2026-12-05T14:00:00Z")
        return value.astimezone(dt.UTC)

    def to_json(self) -> str:
        """The wire form: compact JSON of the envelope."""
        return self.model_dump_json()


class TickerSignal(BaseModel):
    """One ticker of a ``trading-signals`` message, normalised."""

    model_config = ConfigDict(extra="allow")

    ticker: str
    signal: str
    confidence: float = Field(ge=0, le=100)

    @field_validator("ticker", mode="before")
    @classmethod
    def _ticker(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("ticker must be a string such as 'AAPL'")
        try:
            return normalize_symbol(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("signal", mode="before")
    @classmethod
    def _signal(cls, value: Any) -> str:
        word = _SIGNAL_WORDS.get(str(value).strip().upper()) if isinstance(value, str) else None
        if word is None:
            raise ValueError(f"signal {value!r} — expected BULLISH, BEARISH or NEUTRAL")
        return word

    @field_validator("confidence", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"confidence {value!r} — expected a number from 0 to 100")
        return value


class TradingSignals(BaseModel):
    """The ``data`` of a ``trading-signals`` event: tickers plus optional context."""

    model_config = ConfigDict(extra="allow")

    tickers: list[TickerSignal]


def validate_topic(topic: str) -> str:
    """Check a topic name; return it unchanged.

    >>> validate_topic("trading-signals.dlq")
    'trading-signals.dlq'
    """
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        raise InvalidInputError(
            f"invalid topic '{topic}' — expected 1-100 lower-case letters, digits, '-', '_' "
            f"or '.' (known topics: {', '.join(TOPICS)})"
        )
    return topic


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic`` (``trading-signals`` → ``trading-signals.dlq``)."""
    return topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def normalise_data(topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise ``data`` for a topic with a known shape (``trading-signals``)."""
    if topic != TRADING_SIGNALS:
        return data
    try:
        return TradingSignals.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise InvalidInputError(f"invalid trading signal — {_first_error(exc)}") from None


def make_event(topic: str, value: Any, *, source: str = "breadthflow.cli") -> Event:
    """Build the event to publish from what a user typed (lenient).

    A full envelope (``type`` and ``data``) is taken as is; the ``tickers`` shape on
    ``trading-signals`` is wrapped; any other JSON object becomes the ``data`` of an
    event whose type is the topic.
    """
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"invalid message {_shown(value)} — expected a JSON object such as "
            '{"type": "note", "data": {"text": "hello"}}'
        )
    if "type" in value and "data" in value:
        return parse_event(topic, value)
    if topic == TRADING_SIGNALS and "tickers" in value:
        return parse_event(topic, value)
    return parse_event(topic, {"type": topic, "source": source, "data": value})


def parse_event(topic: str, payload: bytes | str | dict[str, Any]) -> Event:
    """Decode one message as delivered by a bus (strict); raise InvalidInputError why not.

    >>> parse_event("trading-signals", b'{"tickers": [{"ticker": "aapl", '
    ...             b'"signal": "buy", "confidence": 85}]}').data["tickers"][0]["signal"]
    'BULLISH'
    """
    if isinstance(payload, bytes | str):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidInputError(
                f"message of {len(payload):,} bytes — expected at most {MAX_PAYLOAD_BYTES:,}"
            )
        try:
            value = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"message is not JSON ({exc})") from None
    else:
        value = payload
    if not isinstance(value, dict):
        raise InvalidInputError(f"message {_shown(value)} is not a JSON object")
    if topic == TRADING_SIGNALS and "tickers" in value and "data" not in value:
        # The scanner shape: everything but the tickers list rides along in data.
        value = {"type": "signals.tickers", "source": "external", "data": value}
    try:
        event = Event.model_validate(value)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid event envelope — {_first_error(exc)}") from None
    data = normalise_data(topic, event.data)
    return event if data is event.data else event.model_copy(update={"data": data})


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "…"
