"""NATS JetStream: one stream per topic, one durable pull consumer per group.

``nats://host:4222[?visibility_timeout=30&prefix=breadthflow]``

A topic is the subject ``<prefix>.<topic>`` captured by its own stream (named after the
topic, since stream names may not contain dots). A consumer group is a durable pull
consumer with explicit acks and ``ack_wait`` = the visibility timeout, so JetStream
redelivers what was not acknowledged in time; every consumer of the group fetches from
the same durable, which splits the messages between them. Events are published with a
``Nats-Msg-Id`` header, so a relay that sends an event twice within the stream's
duplicate window stores it once.

nats-py is asynchronous; this adapter runs its own event loop in a daemon thread and
offers the synchronous :class:`~breadthflow.bus.EventBus` interface. A message is
acknowledged through the bus instance that received it (JetStream acks go to the
delivery's reply subject).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from breadthflow.bus._base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    EventBus,
    RawMessage,
    Start,
    float_option,
    register_bus,
    reject_unknown_options,
)
from breadthflow.core.config import Settings, mask_url
from breadthflow.core.errors import BackendUnavailableError
from breadthflow.store.db import Database

T = TypeVar("T")
_CALL_TIMEOUT = 30.0


class NatsBus(EventBus):
    """NATS JetStream adapter."""

    def __init__(
        self,
        url: str,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        prefix: str = "breadthflow",
    ) -> None:
        import nats
        import nats.errors
        import nats.js.errors

        self._nats = nats
        self._not_found = nats.js.errors.NotFoundError
        self._timeout_errors = (nats.errors.TimeoutError, asyncio.TimeoutError)
        self._server = url.split("?", 1)[0]
        self.url = mask_url(self._server)
        self.visibility_timeout = visibility_timeout
        self.prefix = prefix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._streams: set[str] = set()
        self._subs: dict[tuple[str, str, str], Any] = {}
        # Delivered, unacknowledged messages by (topic, group) and stream sequence.
        self._inflight: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        try:
            self._nc = self._call(
                nats.connect(
                    servers=[self._server],
                    connect_timeout=5,
                    allow_reconnect=True,
                    max_reconnect_attempts=10,
                    reconnect_time_wait=0.5,
                )
            )
        except Exception as exc:
            self._stop_loop()
            raise BackendUnavailableError(
                f"event bus {self.url} unreachable: {type(exc).__name__} {exc}".strip()
            ) from exc
        self._js = self._nc.jetstream()

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = _CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (self._nats.errors.ConnectionClosedError, self._nats.errors.NoServersError) as exc:
            raise BackendUnavailableError(f"event bus {self.url} unreachable: {exc}") from exc

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def stream(self, topic: str) -> str:
        """The JetStream stream name of ``topic`` (readable, and unique thanks to a hash)."""
        digest = hashlib.blake2s(topic.encode(), digest_size=3).hexdigest()
        return f"{self.prefix}-{topic.replace('.', '_')}-{digest}"

    def _subject(self, topic: str) -> str:
        return f"{self.prefix}.{topic}"

    async def _ensure_stream(self, topic: str) -> str:
        name = self.stream(topic)
        if name not in self._streams:
            try:
                await self._js.stream_info(name)
            except self._not_found:
                await self._js.add_stream(name=name, subjects=[self._subject(topic)])
            self._streams.add(name)
        return name

    # --- the interface ---------------------------------------------------------------------

    def _publish_raw(self, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]) -> None:
        async def send() -> None:
            name = await self._ensure_stream(topic)
            # Sent one after the other on one connection (so stored in order), and the
            # acknowledgements awaited together: one round trip per batch, not per event.
            acks = []
            for event_id, payload in payloads:
                data = payload.encode() if isinstance(payload, str) else payload
                headers = {"Nats-Msg-Id": event_id} if event_id else None
                acks.append(
                    await self._js.publish_async(
                        self._subject(topic), data, stream=name, headers=headers
                    )
                )
            await asyncio.wait_for(asyncio.gather(*acks), _CALL_TIMEOUT)

        with self._errors():
            self._call(send())

    async def _subscription(self, topic: str, group: str, consumer: str, start: Start) -> Any:
        key = (topic, group, consumer)
        if key in self._subs:
            return self._subs[key]
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        name = await self._ensure_stream(topic)
        try:
            await self._js.consumer_info(name, group)
        except self._not_found:
            await self._js.add_consumer(
                name,
                ConsumerConfig(
                    durable_name=group,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.visibility_timeout,
                    deliver_policy=DeliverPolicy.ALL if start == "earliest" else DeliverPolicy.NEW,
                    max_deliver=-1,
                    filter_subject=self._subject(topic),
                ),
            )
        sub = await self._js.pull_subscribe_bind(consumer=group, stream=name)
        self._subs[key] = sub
        return sub

    def _fetch(
        self, topic: str, group: str, consumer: str, max_messages: int, timeout: float,
        start: Start,
    ) -> list[RawMessage]:  # fmt: skip
        async def pull() -> list[Any]:
            sub = await self._subscription(topic, group, consumer, start)
            try:
                return await sub.fetch(batch=max_messages, timeout=max(timeout, 0.05))
            except self._timeout_errors:
                return []

        with self._errors():
            msgs = self._call(pull(), timeout + _CALL_TIMEOUT)
        taken = []
        with self._lock:
            inflight = self._inflight.setdefault((topic, group), {})
            for msg in msgs:
                meta = msg.metadata
                seq = str(meta.sequence.stream)
                inflight[seq] = msg
                taken.append(RawMessage(seq, msg.data, meta.num_delivered))
        return taken

    def _ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        with self._lock:
            inflight = self._inflight.get((topic, group), {})
            msgs = [m for m in (inflight.pop(i, None) for i in ids) if m is not None]

        async def ack() -> None:
            # Confirmed acks (one request each, awaited together): once ack() returns the
            # server has recorded them, so lag and redelivery see them.
            await asyncio.gather(*(msg.ack_sync(timeout=10) for msg in msgs))

        if msgs:
            with self._errors():
                self._call(ack())

    def lag(self, topic: str, group: str) -> int:
        async def measure() -> int:
            name = self.stream(topic)
            try:
                info = await self._js.consumer_info(name, group)
            except self._not_found:
                try:
                    return int((await self._js.stream_info(name)).state.messages)
                except self._not_found:
                    return 0
            return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

        with self._errors():
            return self._call(measure())

    def groups(self, topic: str) -> list[str]:
        async def names() -> list[str]:
            try:
                infos = await self._js.consumers_info(self.stream(topic))
            except self._not_found:
                return []
            return sorted(str(i.name) for i in infos)

        with self._errors():
            return self._call(names())

    def delete_group(self, topic: str, group: str) -> None:
        async def drop() -> None:
            for key in [k for k in self._subs if k[:2] == (topic, group)]:
                with contextlib.suppress(Exception):
                    await self._subs.pop(key).unsubscribe()
            with contextlib.suppress(self._not_found):
                await self._js.delete_consumer(self.stream(topic), group)

        with self._errors():
            self._call(drop())
        with self._lock:
            self._inflight.pop((topic, group), None)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._nc.close(), 10)
        self._stop_loop()
        self._loop.close()


@register_bus("nats", "tls")
def _open(url: str, options: dict[str, str], settings: Settings, db: Database | None) -> NatsBus:
    visibility = float_option(options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    prefix = options.pop("prefix", "breadthflow") or "breadthflow"
    reject_unknown_options(url, options)
    return NatsBus(url, visibility, prefix)
