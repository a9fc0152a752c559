"""Redis Streams: one stream per topic, consumer groups, XACK, XAUTOCLAIM.

``redis://[:password@]host:6379/0[?visibility_timeout=30&prefix=breadthflow&maxlen=N]``

A topic is the stream ``<prefix>:<topic>``; an event is an entry with the fields
``payload`` (the JSON envelope) and ``id``. A consume first reclaims (XAUTOCLAIM) entries
other consumers of the group have held longer than the visibility timeout, then reads
new ones (XREADGROUP ``>``, blocking up to the timeout). Acknowledging is XACK. With
``maxlen``, streams are trimmed to about that many entries on publish.
Connection errors are retried with exponential backoff, then reported in one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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
from breadthflow.core.config import Settings, mask_url
from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.store.db import Database


class RedisBus(EventBus):
    """Redis Streams adapter. Thread-safe (redis-py pools connections)."""

    def __init__(
        self,
        url: str,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        prefix: str = "breadthflow",
        maxlen: int | None = None,
    ) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._redis_errors = (redis.ConnectionError, redis.TimeoutError)
        self._response_error = redis.ResponseError
        self.url = mask_url(url.split("?", 1)[0])
        self.visibility_timeout = visibility_timeout
        self.prefix = prefix
        self.maxlen = maxlen
        try:
            self.client = redis.Redis.from_url(
                url.split("?", 1)[0],
                socket_connect_timeout=5,
                retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 4),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
        except ValueError as exc:
            raise ConfigError(f"invalid Redis bus URL '{self.url}': {exc}") from None
        self._groups: set[tuple[str, str]] = set()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._redis_errors as exc:
            raise BackendUnavailableError(f"event bus {self.url} unreachable: {exc}") from exc

    def _key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}"

    def _publish_raw(self, topic: str, payloads: Sequence[tuple[str | None, bytes | str]]) -> None:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for event_id, payload in payloads:
                fields: dict[Any, Any] = {"payload": payload, "id": event_id or ""}
                if self.maxlen:
                    pipe.xadd(self._key(topic), fields, maxlen=self.maxlen, approximate=True)
                else:
                    pipe.xadd(self._key(topic), fields)
            pipe.execute()

    def _ensure_group(self, topic: str, group: str, start: Start) -> None:
        if (topic, group) in self._groups:
            return
        try:
            self.client.xgroup_create(
                self._key(topic), group, id="0" if start == "earliest" else "$", mkstream=True
            )
        except self._response_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((topic, group))

    def _fetch(
        self, topic: str, group: str, consumer: str, max_messages: int, timeout: float,
        start: Start,
    ) -> list[RawMessage]:  # fmt: skip
        key = self._key(topic)
        with self._errors():
            self._ensure_group(topic, group, start)
            taken: list[RawMessage] = []
            gone: list[bytes] = []
            # Entries idle longer than the visibility timeout: their consumer is gone.
            reply = self.client.xautoclaim(
                key, group, consumer, int(self.visibility_timeout * 1000), "0-0",
                count=max_messages,
            )  # fmt: skip
            for entry_id, fields in reply[1]:
                if fields is None:  # trimmed away while pending
                    gone.append(entry_id)
                else:
                    taken.append(_raw(entry_id, fields, None))
            if len(taken) < max_messages:
                block = None if taken or timeout <= 0 else max(1, int(timeout * 1000))
                read = self.client.xreadgroup(
                    group, consumer, {key: ">"}, count=max_messages - len(taken), block=block
                )
                for _stream, entries in read or []:
                    taken.extend(_raw(entry_id, fields, 1) for entry_id, fields in entries)
            if gone:
                self.client.xack(key, group, *gone)
        return taken

    def _ack(self, topic: str, group: str, ids: Sequence[str]) -> None:
        with self._errors():
            self.client.xack(self._key(topic), group, *ids)

    def lag(self, topic: str, group: str) -> int:
        key = self._key(topic)
        with self._errors():
            if not self.client.exists(key):
                return 0
            for info in self.client.xinfo_groups(key):
                if _text(info["name"]) != group:
                    continue
                unread = info.get("lag")
                if unread is None:  # Redis cannot tell after trims/deletes: count
                    unread = len(
                        self.client.xrange(key, min=f"({_text(info['last-delivered-id'])}")
                    )
                return int(unread) + int(info["pending"])
            return int(self.client.xlen(key))

    def groups(self, topic: str) -> list[str]:
        key = self._key(topic)
        with self._errors():
            if not self.client.exists(key):
                return []
            return sorted(_text(info["name"]) for info in self.client.xinfo_groups(key))

    def delete_group(self, topic: str, group: str) -> None:
        with self._errors():
            if self.client.exists(self._key(topic)):
                self.client.xgroup_destroy(self._key(topic), group)
        self._groups.discard((topic, group))

    def close(self) -> None:
        self.client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(entry_id: bytes | str, fields: dict[bytes, bytes], deliveries: int | None) -> RawMessage:
    return RawMessage(_text(entry_id), fields.get(b"payload", b""), deliveries)


@register_bus("redis", "rediss")
def _open(url: str, options: dict[str, str], settings: Settings, db: Database | None) -> RedisBus:
    visibility = float_option(options, "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    prefix = options.pop("prefix", "breadthflow") or "breadthflow"
    maxlen = int(float_option(options, "maxlen", 0) or 0) if "maxlen" in options else None
    reject_unknown_options(url, options)
    return RedisBus(url, visibility, prefix, maxlen)
