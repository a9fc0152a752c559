"""One contract, every adapter: SQLite, PostgreSQL, Redis Streams, NATS JetStream, Kafka.

Each test runs once per adapter against a real server (see conftest.py). The visibility
timeout is one second, so redelivery tests are quick.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from breadthflow.bus import Event, EventBus, Message
from breadthflow.bus.relay import Relay
from breadthflow.core.errors import ConfigError
from breadthflow.store.db import Database

MakeBus = Callable[[], EventBus]


def unique(kind: str = "t") -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def events(n: int, kind: str = "note") -> list[Event]:
    return [Event(type=kind, source="tests", data={"n": i}) for i in range(n)]


def drain(
    bus: EventBus, topic: str, group: str, consumer: str, want: int, timeout: float = 20.0,
    *, ack: bool = True, **kwargs: object,
) -> list[Message]:  # fmt: skip
    """Consume until ``want`` messages arrived (or ``timeout``); acknowledge them."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = bus.consume(topic, group, consumer, want - len(got), 0.5, **kwargs)  # type: ignore[arg-type]
        if ack and batch:
            bus.ack(topic, group, batch)
        got.extend(batch)
    return got


def join(bus: EventBus, topic: str, group: str, *consumers: str, **kwargs: object) -> None:
    """Make ``consumers`` members of ``group`` before anything is published.

    Kafka assigns partitions to members asynchronously; the other buses only need the
    group to exist."""
    for consumer in consumers:
        bus.consume(topic, group, consumer, 1, 0, **kwargs)  # type: ignore[arg-type]
    readers = getattr(bus, "_readers", None)
    if readers is None:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = [r for (t, g, _c), r in readers.items() if (t, g) == (topic, group)]
        if all(r.consumer.assignment() for r in mine) and len(mine) == len(consumers):
            sizes = sum(len(r.consumer.assignment()) for r in mine)
            if sizes == bus._topics[topic]:  # type: ignore[attr-defined]
                return
        for consumer in consumers:
            assert bus.consume(topic, group, consumer, 1, 0.3, **kwargs) == []  # type: ignore[arg-type]
    raise AssertionError("kafka consumers were not assigned partitions within 30 s")


def test_round_trip_delivers_a_batch_in_order(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    g = unique("g")  # Kafka group ids are global
    sent = events(10)

    ids = bus.publish(topic, sent)
    got = drain(bus, topic, g, "c1", 10)

    assert ids == [e.id for e in sent]
    assert [m.event for m in got] == sent
    assert len({m.id for m in got}) == 10
    assert all(m.topic == topic for m in got)


def test_unacknowledged_messages_are_redelivered_to_another_consumer(make_bus: MakeBus) -> None:
    first, topic = make_bus(), unique()
    g = unique("g")  # Kafka group ids are global
    first.publish(topic, events(3))
    taken = drain(first, topic, g, "crashing", 3, ack=False)
    assert len(taken) == 3
    first.close()  # the consumer dies without acknowledging

    second = make_bus()
    again = drain(second, topic, g, "survivor", 3)

    assert [m.event.id for m in again] == [m.event.id for m in taken]
    assert all(m.deliveries in (None, 2) for m in again)
    assert drain(second, topic, g, "survivor", 1, timeout=2) == []


def test_acknowledged_messages_are_gone_and_lag_counts_the_rest(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    g = unique("g")  # Kafka group ids are global
    bus.publish(topic, events(5))
    assert bus.lag(topic, g) == 5  # a new group would read everything

    taken = drain(bus, topic, g, "c1", 5, ack=False)
    assert len(taken) == 5
    assert bus.lag(topic, g) == 5  # delivered but not acknowledged still counts
    bus.ack(topic, g, taken[:3])
    assert bus.lag(topic, g) == 2

    time.sleep(1.2)  # past the visibility timeout
    back = drain(bus, topic, g, "c1", 2)

    assert [m.event.id for m in back] == [m.event.id for m in taken[3:]]
    assert bus.lag(topic, g) == 0
    assert drain(bus, topic, g, "c1", 1, timeout=1.5) == []
    assert g in bus.groups(topic)


def test_two_consumers_of_a_group_split_the_messages(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    g = unique("g")  # Kafka group ids are global
    join(bus, topic, g, "c1", "c2")
    for batch in range(10):  # ten batches, so a partitioned bus spreads them
        bus.publish(topic, [Event(type="note", data={"batch": batch, "i": i}) for i in range(2)])

    seen: dict[str, list[str]] = {"c1": [], "c2": []}
    deadline = time.monotonic() + 30
    while sum(map(len, seen.values())) < 20 and time.monotonic() < deadline:
        for consumer in seen:
            batch = bus.consume(topic, g, consumer, 3, 0.2)
            bus.ack(topic, g, batch)
            seen[consumer] += [m.event.id for m in batch]

    everything = seen["c1"] + seen["c2"]
    assert len(everything) == 20 and len(set(everything)) == 20  # all, and no duplicates
    assert seen["c1"] and seen["c2"]


def test_groups_are_independent(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    audit, billing = unique("audit"), unique("billing")  # Kafka group ids are global
    bus.publish(topic, events(4))

    a = drain(bus, topic, audit, "a1", 4)
    b = drain(bus, topic, billing, "b1", 4)

    assert [m.event.id for m in a] == [m.event.id for m in b]
    assert bus.groups(topic) == sorted([audit, billing])
    bus.delete_group(topic, audit)
    assert bus.groups(topic) == [billing]


def test_a_new_group_can_start_at_the_latest_message(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    late = unique("late")  # Kafka group ids are global
    bus.publish(topic, events(3, "old"))
    join(bus, topic, late, "c1", start="latest")

    bus.publish(topic, events(2, "new"))
    got = drain(bus, topic, late, "c1", 2, start="latest")

    assert [m.event.type for m in got] == ["new", "new"]
    assert drain(bus, topic, late, "c1", 1, timeout=1) == []


def test_malformed_messages_go_to_the_dead_letter_topic_and_the_consumer_continues(
    make_bus: MakeBus,
) -> None:
    bus, topic = make_bus(), unique()
    g, ops = unique("g"), unique("ops")  # Kafka group ids are global
    good = events(2)
    bus.publish(topic, good[:1])
    bus.publish_raw(topic, [b"not json {", b'{"type": 7, "data": {}}', b"[1, 2]"])
    bus.publish(topic, good[1:])

    got = drain(bus, topic, g, "c1", 2)
    letters = drain(bus, f"{topic}.dlq", ops, "o1", 3)

    # Separate publishes may land on different Kafka partitions: compare as sets.
    assert {m.event.id for m in got} == {e.id for e in good} and len(got) == 2
    assert bus.lag(topic, g) == 0  # the bad ones were acknowledged too
    assert [m.event.type for m in letters] == ["dead-letter"] * 3
    reasons = {m.event.data["payload"]: m.event.data["reason"] for m in letters}
    assert sorted(reasons) == sorted(["not json {", '{"type": 7, "data": {}}', "[1, 2]"])
    assert {m.event.data["topic"] for m in letters} == {topic}
    assert {m.event.data["group"] for m in letters} == {g}
    assert "not JSON" in reasons["not json {"]
    assert "type" in reasons['{"type": 7, "data": {}}']
    assert "not a JSON object" in reasons["[1, 2]"]


def test_a_consumer_can_dead_letter_a_valid_message_it_cannot_process(make_bus: MakeBus) -> None:
    bus, topic = make_bus(), unique()
    g, ops = unique("g"), unique("ops")  # Kafka group ids are global
    bus.publish(topic, events(1))
    [message] = drain(bus, topic, g, "c1", 1, ack=False)

    bus.dead_letter(topic, g, message, "pipeline 42 does not exist")

    [letter] = drain(bus, f"{topic}.dlq", ops, "o1", 1)
    assert letter.event.data["reason"] == "pipeline 42 does not exist"
    assert Event.model_validate_json(letter.event.data["payload"]) == message.event
    time.sleep(1.2)
    assert drain(bus, topic, g, "c1", 1, timeout=1.5) == []


def test_the_scanner_shape_of_trading_signals_is_normalised(make_bus: MakeBus) -> None:
    bus, group = make_bus(), unique("g")
    bus.publish_raw(
        "trading-signals",
        [b'{"tickers": [{"ticker": "aapl", "signal": "buy", "confidence": 85},'
         b' {"ticker": "MSFT", "signal": "BEARISH", "confidence": 40.5}]}',
         b'{"tickers": [{"ticker": "AAPL", "signal": "BULLISH", "confidence": 185}]}'],
    )  # fmt: skip

    [message] = drain(bus, "trading-signals", group, "c1", 2, timeout=4)
    [letter] = drain(bus, "trading-signals.dlq", f"ops-{group}", "o1", 1)

    assert message.event.type == "signals.tickers"
    assert message.event.data["tickers"] == [
        {"ticker": "AAPL", "signal": "BULLISH", "confidence": 85.0},
        {"ticker": "MSFT", "signal": "BEARISH", "confidence": 40.5},
    ]
    assert "confidence" in letter.event.data["reason"]


def test_the_outbox_survives_a_crash_between_commit_and_relay(
    make_bus: MakeBus, meta_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, topic = make_bus(), unique()
    g = unique("g")  # Kafka group ids are global
    committed = events(3, "signal.stored")
    with meta_db.session() as session:  # the change and its events commit together
        bus.publish(topic, committed, session=session)
    with pytest.raises(RuntimeError), meta_db.session() as session:
        bus.publish(topic, events(1, "rolled.back"), session=session)
        raise RuntimeError("the change failed")

    if bus.embedded:
        with pytest.raises(ConfigError):
            Relay(meta_db, bus)
    else:
        assert drain(bus, topic, g, "c1", 1, timeout=1) == []  # nothing sent yet

        def crash(*_: object) -> None:
            raise SystemExit("relay killed after publishing, before marking")

        monkeypatch.setattr(Relay, "_mark", staticmethod(crash))
        with pytest.raises(SystemExit):
            Relay(meta_db, make_bus()).run_once()
        monkeypatch.undo()
        assert Relay(meta_db, make_bus()).drain() == 3  # sent again: nothing was marked
        assert Relay(meta_db, make_bus()).drain() == 0

    got = drain(bus, topic, g, "c1", 6, timeout=4)
    ids = [m.event.id for m in got]
    assert set(ids) == {e.id for e in committed}  # at least once, never the rolled back
    assert [m.event.type for m in got] == ["signal.stored"] * len(got)
