"""Kafka (confluent-kafka): topics with partitions, consumer groups, commits after processing.

``kafka://host:9092[,host2:9092][?visibility_timeout=30&partitions=4&session_timeout=10]``

- **Producer**: idempotent (``enable.idempotence``, ``acks=all``), so client retries
  never duplicate or reorder within a partition. A ``publish`` batch goes to one
  partition (batches rotate over the partitions), so a batch is delivered in order.
- **Consumers**: one Kafka consumer per (topic, group, consumer name), auto-commit off.
  :meth:`ack` commits, per partition, the offset of the oldest message still
  unacknowledged — so acknowledging out of order never skips a message. Messages not
  acknowledged within the visibility timeout are read again (the consumer seeks back),
  and a consumer that dies leaves them uncommitted for the group. Partitions are what a
  group splits: run at most ``partitions`` consumers per group.
- **Lag** counts the messages after the group's committed offsets by reading them (the
  broker's high watermark is not relied on).
- Topics are created on first use with ``partitions`` partitions.

Kafka consumers are not thread-safe: use one consumer name per thread. Acks go through
the bus instance that received the messages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from breadthflow.bus._base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    EventBus,
    RawMessage,
    Start,
    float_option,
    register_bus,
    reject_unknown_options,
)
from breadthflow.core.config import Settings
from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.store.db import Database

# Counting lag by reading: wait this long for the first message, then stop after this
# long without one.
# librdkafka logs through Python logging instead of writing to stderr.
_client_log = logging.getLogger("breadthflow.bus.kafka.client")
_LAG_FIRST_WAIT = 2.0
_LAG_IDLE_SECONDS = 0.5


@dataclass
class _Reader:
    """One Kafka consumer and what it has delivered but not had acknowledged."""

    consumer: Any
    # partition -> offset -> monotonic delivery time
    outstanding: dict[int, dict[int, float]] = field(default_factory=dict)
    # partition -> next offset to commit once nothing is outstanding
    next_offset: dict[int, int] = field(default_factory=dict)


class KafkaBus(EventBus):
    """Kafka adapter (confluent-kafka / librdkafka)."""

    def __init__(
        self,
        bootstrap: str,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        partitions: int = 4,
        session_timeout: float = 10.0,
    ) -> None:
        import confluent_kafka
        from confluent_kafka.admin import AdminClient

        self._ck = confluent_kafka
        self.bootstrap = bootstrap
        self.url = f"kafka://{bootstrap}"
        self.visibility_timeout = visibility_timeout
        self.partitions = partitions
        self.session_timeout_ms = int(session_timeout * 1000)
        self._admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _client_log})
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "logger": _client_log,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 30_000,
                "log.connection.close": False,
            }
        )
        self._readers: dict[tuple[str, str, str], _Reader] = {}
        self._topics: dict[str, int] = {}
        self._batches = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._ck.KafkaException as exc:
            raise BackendUnavailableError(f"event bus {self.url} failed: {exc}") from exc

    # --- topics ----------------------------------------------------------------------------

    def _ensure_topic(self, topic: str) -> int:
        """Create ``topic`` when missing; return its partition count."""
        if topic in self._topics:
            return self._topics[topic]
        from confluent_kafka.admin import NewTopic

        count = self._partition_count(topic)
        if not count:
            futures = self._admin.create_topics(
                [NewTopic(topic, num_partitions=self.partitions, replication_factor=1)],
                operation_timeout=10,
            )
            try:
                futures[topic].result(15)
            except self._ck.KafkaException as exc:
                if exc.args[0].code() != self._ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            deadline = time.monotonic() + 10
            while not (count := self._partition_count(topic)) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not count:
                raise BackendUnavailableError(f"event bus {self.url}: topic {topic} not created")
        self._topics[topic] = count
        return count

    def _partition_count(self, topic: str) -> int:
        # All topics, not list_topics(topic): asking for one topic's metadata makes a
        # broker with auto-creation create it with its default partition count.
        meta = self._admin.list_topics(timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return len(meta.partitions)

    # --- publishing ------------------------------------------------------------------------

    def _publish_raw(self, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]) -> None:
        failures: list[str] = []

        def delivered(error: Any, _msg: Any) -> None:
            if error is not None:
                failures.append(str(error))

        with self._errors():
            count = self._ensure_topic(topic)
            with self._lock:
                partition = self._batches % count
                self._batches += 1
            for event_id, payload in payloads:
                self._producer.produce(
                    topic,
                    value=payload,
                    key=event_id.encode() if event_id else None,
                    partition=partition,
                    on_delivery=delivered,
                )
                self._producer.poll(0)
            left = self._producer.flush(30)
        if failures or left:
            reason = failures[0] if failures else f"{left} message(s) not delivered in 30 s"
            raise BackendUnavailableError(f"event bus {self.url}: publish failed: {reason}")

    # --- consuming -------------------------------------------------------------------------

    def _reader(self, topic: str, group: str, consumer: str, start: Start) -> _Reader:
        key = (topic, group, consumer)
        reader = self._readers.get(key)
        if reader is None:
            self._ensure_topic(topic)
            kafka_consumer = self._ck.Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "logger": _client_log,
                    "group.id": group,
                    "client.id": consumer,
                    "enable.auto.commit": False,
                    "auto.offset.reset": start,
                    "session.timeout.ms": self.session_timeout_ms,
                    "heartbeat.interval.ms": max(100, self.session_timeout_ms // 5),
                    "topic.metadata.refresh.interval.ms": 1000,
                    "log.connection.close": False,
                }
            )
            reader = _Reader(kafka_consumer)

            def revoked(_consumer: Any, partitions: list[Any]) -> None:
                # Another member owns these now; what we held will reach it uncommitted.
                for tp in partitions:
                    reader.outstanding.pop(tp.partition, None)
                    reader.next_offset.pop(tp.partition, None)

            def assigned(kafka: Any, partitions: list[Any]) -> None:
                if start != "latest":
                    return
                # A new group starting at "latest": find the end by reading rather
                # than trusting the broker's high watermark, and commit it so every
                # member of the group starts there.
                committed = kafka.committed(partitions, timeout=10)
                fresh = [tp for tp in committed if tp.offset < 0]
                if not fresh:
                    return
                ends = [self._ck.TopicPartition(topic, tp.partition, self._end(tp)) for tp in fresh]
                kafka.commit(offsets=ends, asynchronous=False)
                by_partition = {tp.partition: tp.offset for tp in ends}
                for tp in partitions:
                    tp.offset = by_partition.get(tp.partition, tp.offset)
                kafka.assign(partitions)

            kafka_consumer.subscribe(
                [topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked
            )
            self._readers[key] = reader
        return reader

    def _fetch(
        self, topic: str, group: str, consumer: str, max_messages: int, timeout: float,
        start: Start,
    ) -> list[RawMessage]:  # fmt: skip
        with self._errors():
            reader = self._reader(topic, group, consumer, start)
            self._rewind_expired(topic, reader)
            msgs = reader.consumer.consume(num_messages=max_messages, timeout=timeout)
        taken: list[RawMessage] = []
        now = time.monotonic()
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.code() in (
                    self._ck.KafkaError._PARTITION_EOF,
                    self._ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
                ):
                    continue
                raise BackendUnavailableError(f"event bus {self.url}: {error}")
            partition, offset = msg.partition(), msg.offset()
            reader.outstanding.setdefault(partition, {})[offset] = now
            reader.next_offset[partition] = max(reader.next_offset.get(partition, 0), offset + 1)
            taken.append(RawMessage(f"{partition}:{offset}", msg.value() or b"", None))
        return taken

    def _rewind_expired(self, topic: str, reader: _Reader) -> None:
        """Seek back to the oldest message held longer than the visibility timeout, so it
        (and what followed it) is delivered again."""
        cutoff = time.monotonic() - self.visibility_timeout
        for partition, held in list(reader.outstanding.items()):
            expired = [offset for offset, at in held.items() if at <= cutoff]
            if not expired:
                continue
            first = min(expired)
            reader.consumer.seek(self._ck.TopicPartition(topic, partition, first))
            for offset in [o for o in held if o >= first]:
                del held[offset]

    def _ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        wanted: dict[int, set[int]] = {}
        for message_id in ids:
            partition, _, offset = str(message_id).partition(":")
            if partition.isdigit() and offset.isdigit():
                wanted.setdefault(int(partition), set()).add(int(offset))
        with self._errors():
            for (t, g, _c), reader in list(self._readers.items()):
                if (t, g) != (topic, group):
                    continue
                commits = []
                for partition, offsets in wanted.items():
                    held = reader.outstanding.get(partition)
                    if not held or not offsets & held.keys():
                        continue
                    for offset in offsets:
                        held.pop(offset, None)
                    upto = min(held) if held else reader.next_offset[partition]
                    commits.append(self._ck.TopicPartition(topic, partition, upto))
                if commits:
                    reader.consumer.commit(offsets=commits, asynchronous=False)

    # --- introspection ---------------------------------------------------------------------

    def lag(self, topic: str, group: str) -> int:
        with self._errors():
            count = self._partition_count(topic)
            if not count:
                return 0
            partitions = [self._ck.TopicPartition(topic, p) for p in range(count)]
            probe = self._ck.Consumer(
                {"bootstrap.servers": self.bootstrap,
                "logger": _client_log, "group.id": group,
                 "enable.auto.commit": False}
            )  # fmt: skip
            try:
                committed = probe.committed(partitions, timeout=10)
            finally:
                probe.close()
            return self._count_from(
                [
                    self._ck.TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else 0)
                    for tp in committed
                ]
            )

    def _end(self, tp: Any) -> int:
        """The offset after the last message of a partition, found by reading."""
        reader = self._ck.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "logger": _client_log,
                "group.id": f"breadthflow-lag-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            reader.assign([self._ck.TopicPartition(tp.topic, tp.partition, 0)])
            end = 0
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < (_LAG_IDLE_SECONDS if end else _LAG_FIRST_WAIT):
                batch = [m for m in reader.consume(num_messages=1000, timeout=0.2) if not m.error()]
                if batch:
                    end = max(end, *(m.offset() + 1 for m in batch))
                    idle_since = time.monotonic()
            return end
        finally:
            reader.close()

    def _count_from(self, starts: list[Any]) -> int:
        """Read every message after ``starts`` and count them (until reading goes idle)."""
        reader = self._ck.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "logger": _client_log,
                "group.id": f"breadthflow-lag-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            reader.assign(starts)
            total = 0
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < (_LAG_IDLE_SECONDS if total else _LAG_FIRST_WAIT):
                batch = reader.consume(num_messages=1000, timeout=0.2)
                got = sum(1 for m in batch if m.error() is None)
                if got:
                    total += got
                    idle_since = time.monotonic()
            return total
        finally:
            reader.close()

    def groups(self, topic: str) -> list[str]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        with self._errors():
            listed = self._admin.list_consumer_groups(request_timeout=10).result()
            names = sorted(g.group_id for g in listed.valid)
            found = []
            for name in names:
                if name.startswith("breadthflow-lag-"):
                    continue
                futures = self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(name)]
                )
                result = futures[name].result(10)
                if any(tp.topic == topic for tp in result.topic_partitions or []):
                    found.append(name)
            return found

    def delete_group(self, topic: str, group: str) -> None:
        for key in [k for k in self._readers if k[:2] == (topic, group)]:
            with contextlib.suppress(Exception):
                self._readers.pop(key).consumer.close()
        with contextlib.suppress(Exception):
            self._admin.delete_consumer_groups([group], request_timeout=10)[group].result(10)

    def close(self) -> None:
        for reader in self._readers.values():
            with contextlib.suppress(Exception):
                reader.consumer.close()  # leaves the group; nothing is committed here
        self._readers.clear()
        self._producer.flush(10)


@register_bus("kafka")
def _open(url: str, options: dict[str, str], settings: Settings, db: Database | None) -> KafkaBus:
    visibility = float_option(options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    partitions = float_option(options, "partitions", 4)
    session = float_option(options, "session_timeout", 10)
    reject_unknown_options(url, options)
    bootstrap = url.split("://", 1)[1].split("?", 1)[0].strip("/")
    if not bootstrap or partitions != int(partitions):
        raise ConfigError(
            f"invalid Kafka bus URL '{url}' — expected kafka://HOST:PORT[,HOST:PORT][?partitions=N]"
        )
    return KafkaBus(bootstrap, visibility, int(partitions), session)
