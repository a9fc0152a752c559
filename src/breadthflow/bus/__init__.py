"""The event bus: publish events to topics, consume them in groups, acknowledge, lag.

One small interface, :class:`EventBus`, with adapters chosen by ``BREADTHFLOW_BUS_URL``
(see docs/events.md):

=================  ======================================================================
``sqlite``         (default) durable log in the metadata DB; ``postgres`` is the same
``redis://…``      Redis Streams, consumer groups, XACK, XAUTOCLAIM of timed-out entries
``kafka://…``      confluent-kafka, commits after processing, idempotent producer
``nats://…``       NATS JetStream durable pull consumers
=================  ======================================================================

>>> from breadthflow.bus import Event, open_bus
>>> bus = open_bus("sqlite", settings)                                    # doctest: +SKIP
>>> bus.publish("pipeline-events", [Event(type="run.queued", data={"run_id": "r1"})])
>>> batch = bus.consume("pipeline-events", "audit", "audit-1", max_messages=50, timeout=1)
>>> for message in batch:
...     handle(message.event)        # idempotent: a message can come twice
>>> bus.ack("pipeline-events", "audit", batch)
"""

from breadthflow.bus._base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    EventBus,
    Message,
    known_schemes,
    open_bus,
    register_bus,
)
from breadthflow.bus.events import (
    BACKTEST_RESULTS,
    MARKET_DATA,
    PIPELINE_EVENTS,
    TOPICS,
    TRADING_SIGNALS,
    Event,
    dlq_topic,
    make_event,
    parse_event,
    validate_topic,
)

__all__ = [
    "BACKTEST_RESULTS",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "MARKET_DATA",
    "PIPELINE_EVENTS",
    "TOPICS",
    "TRADING_SIGNALS",
    "Event",
    "EventBus",
    "Message",
    "dlq_topic",
    "known_schemes",
    "make_event",
    "open_bus",
    "parse_event",
    "register_bus",
    "validate_topic",
]
