"""The trigger dispatcher: trading signals in, pipeline runs queued.

Loop (one instance; several in one consumer group split the load):

1. take up to ``batch_size`` messages from ``trading-signals``, waiting at most
   ``batch_timeout`` seconds once the first has arrived;
2. match their tickers against the in-memory index of active ``trigger_mode=signal``
   pipelines (rebuilt every ``cache_refresh`` seconds, and at once when a
   ``pipeline.*`` event says a definition changed);
3. one DB transaction: one query finds which matched pipelines already have a queued or
   running run (skipped — that is the idempotency), the others get a ``signal`` run
   whose ``trigger_payload`` is the triggering signal (ticker, bias, confidence);
4. acknowledge the batch — only now, so a crash before this redelivers the batch
   (at-least-once; a redelivered signal finds its pipeline busy and is skipped).

>>> dispatcher = Dispatcher(bus, db, DispatcherConfig(batch_size=20))   # doctest: +SKIP
>>> dispatcher.run_once()                                              # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from breadthflow.bus import PIPELINE_EVENTS, TRADING_SIGNALS, EventBus, Message
from breadthflow.bus.events import normalise_data
from breadthflow.core.errors import BackendUnavailableError, InvalidInputError
from breadthflow.pipelines.shutdown import GracefulShutdown
from breadthflow.store.db import Database
from breadthflow.store.dispatch import enqueue_triggered
from breadthflow.store.pipelines import PipelineRepository
from breadthflow.triggers.index import PipelineIndex, TriggerSignal, signals_from_data

log = logging.getLogger(__name__)


class DispatcherConfig(BaseModel):
    """Dispatcher settings (documented in docs/triggers.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(20, ge=1, le=100_000)
    batch_timeout: float = Field(0.5, gt=0, le=60)
    cache_refresh: float = Field(30.0, gt=0)
    group: str = "dispatcher"
    topic: str = TRADING_SIGNALS
    #: Seconds between polls when the topic is idle (the bus waits this long for a message).
    poll_timeout: float = Field(1.0, gt=0, le=60)
    #: A pipeline found queued or running is skipped without asking the DB again for this
    #: many seconds (0: ask every batch). Bounds how long a signal can be skipped for a
    #: pipeline whose run has just finished; saves the query under a flood of signals.
    busy_ttl: float = Field(1.0, ge=0, le=60)


@dataclass
class DispatcherMetrics:
    """Counters since start, and recent batch latencies (seconds)."""

    received: int = 0
    signals: int = 0
    matched: int = 0
    enqueued: int = 0
    skipped: int = 0
    invalid: int = 0
    batches: int = 0
    db_queries: int = 0
    index_refreshes: int = 0
    bus_errors: int = 0
    lag: int | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    #: Seconds from an event's time to its batch being committed (publish → enqueued).
    event_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    #: signal word → [received, enqueued]
    by_signal: dict[str, list[int]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        def pct(values: deque[float], q: float) -> float | None:
            ordered = sorted(values)
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

        return {
            "received": self.received,
            "signals": self.signals,
            "matched": self.matched,
            "enqueued": self.enqueued,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "batches": self.batches,
            "db_queries": self.db_queries,
            "db_queries_per_batch": (self.db_queries / self.batches) if self.batches else None,
            "index_refreshes": self.index_refreshes,
            "bus_errors": self.bus_errors,
            "consumer_lag": self.lag,
            "batch_latency_p50": pct(self.latencies, 0.5),
            "batch_latency_p99": pct(self.latencies, 0.99),
            "dispatch_latency_p50": pct(self.event_latencies, 0.5),
            "dispatch_latency_p99": pct(self.event_latencies, 0.99),
            "by_signal": {
                word: {"received": counts[0], "enqueued": counts[1]}
                for word, counts in self.by_signal.items()
            },
        }


@dataclass
class BatchResult:
    """What one batch did (for tests and logs)."""

    messages: int
    signals: int
    matched: dict[int, TriggerSignal]
    enqueued: dict[int, str]
    skipped: set[int]
    queries: int
    seconds: float


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}".replace(".", "-")[:100]


class Dispatcher:
    """Consume trading signals, match them to pipelines, queue runs."""

    def __init__(
        self,
        bus: EventBus,
        db: Database,
        config: DispatcherConfig | None = None,
        *,
        consumer: str | None = None,
        universe_symbols: Callable[[str], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.db = db
        self.config = config or DispatcherConfig()
        self.consumer = consumer or default_consumer_name()
        self.universe_symbols = universe_symbols
        self.clock = clock
        self.metrics = DispatcherMetrics()
        self.index = PipelineIndex({}, {})
        self._index_built_at: float | None = None
        #: pipeline id → clock time until which it counts as busy without a DB check.
        self._busy_until: dict[int, float] = {}
        # Each instance must see every definition change, so its group is its own.
        self._changes_group = f"dispatcher-index-{self.consumer}"[:100]

    # --- the index -------------------------------------------------------------------------

    def refresh_index(self, force: bool = False) -> bool:
        """Rebuild the ticker index when it is older than ``cache_refresh`` (or forced)."""
        now = self.clock()
        fresh = (
            self._index_built_at is not None
            and now - self._index_built_at < self.config.cache_refresh
        )
        if fresh and not force:
            return False
        pipelines = PipelineRepository(self.db).list(active_only=True)
        self.index = PipelineIndex.from_pipelines(pipelines, self.universe_symbols)
        self._index_built_at = now
        self._busy_until = {p: t for p, t in self._busy_until.items() if t > now}
        self.metrics.index_refreshes += 1
        log.debug(
            "trigger index: %d signal pipelines, %d tickers",
            self.index.pipelines,
            len(self.index.by_ticker),
        )
        return True

    def _definitions_changed(self) -> bool:
        """Drain ``pipeline.*`` events addressed to this instance; True if any came."""
        messages = self.bus.consume(
            PIPELINE_EVENTS, self._changes_group, self.consumer, 500, timeout=0, start="latest"
        )
        if messages:
            self.bus.ack(PIPELINE_EVENTS, self._changes_group, messages)
        return any(m.event.type.startswith("pipeline.") for m in messages)

    # --- one batch -------------------------------------------------------------------------

    def handle(self, messages: Sequence[Message]) -> BatchResult:
        """Match and enqueue one batch of delivered messages (does not acknowledge)."""
        started = time.perf_counter()
        signals: list[TriggerSignal] = []
        # The bus checks the shape on the standard topic; on any other, check it here.
        checked = self.config.topic == TRADING_SIGNALS
        for message in messages:
            data = message.event.data
            if not checked:
                try:
                    data = normalise_data(TRADING_SIGNALS, data)
                except InvalidInputError as exc:
                    self.bus.dead_letter(self.config.topic, self.config.group, message, exc.message)
                    self.metrics.invalid += 1
                    continue
            signals.extend(signals_from_data(data, message.event.id, message.event.source))
        result = self.handle_signals(signals, len(messages), started)
        done = dt.datetime.now(dt.UTC)
        self.metrics.event_latencies.extend(
            (done - message.event.time).total_seconds() for message in messages
        )
        return result

    def handle_signals(
        self, signals: Sequence[TriggerSignal], messages: int | None = None, started: float = 0.0
    ) -> BatchResult:
        """Match and enqueue already-decoded signals (what :meth:`handle` does after decoding)."""
        started = started or time.perf_counter()
        m = self.metrics
        matched = self.index.match(signals)
        now = self.clock()
        ttl = self.config.busy_ttl
        busy_until = self._busy_until
        fresh = {pid: s for pid, s in matched.items() if busy_until.get(pid, 0.0) <= now}
        outcome = enqueue_triggered(self.db, {pid: s.payload() for pid, s in fresh.items()})
        if ttl > 0:
            until = now + ttl
            for pid in outcome.busy:
                busy_until[pid] = until
            for pid in outcome.enqueued:
                busy_until[pid] = until
        skipped = (matched.keys() - fresh.keys()) | outcome.busy | outcome.gone
        seconds = time.perf_counter() - started
        m.received += len(signals) if messages is None else messages
        m.signals += len(signals)
        m.matched += len(matched)
        m.enqueued += len(outcome.enqueued)
        m.skipped += len(skipped)
        m.batches += 1
        m.db_queries += outcome.queries
        m.latencies.append(seconds)
        for signal in signals:
            m.by_signal.setdefault(signal.signal, [0, 0])[0] += 1
        for pid in outcome.enqueued:
            m.by_signal.setdefault(matched[pid].signal, [0, 0])[1] += 1
        if outcome.enqueued:
            log.info(
                "dispatched %d run(s) for %d signal(s); %d skipped (already queued or running)",
                len(outcome.enqueued),
                len(signals),
                len(skipped),
            )
        return BatchResult(
            messages=len(signals) if messages is None else messages,
            signals=len(signals),
            matched=matched,
            enqueued=outcome.enqueued,
            skipped=skipped,
            queries=outcome.queries,
            seconds=seconds,
        )

    # --- the loop --------------------------------------------------------------------------

    def _collect(self) -> list[Message]:
        """Up to ``batch_size`` messages: wait for the first, then up to ``batch_timeout``."""
        c = self.config
        batch = self.bus.consume(
            c.topic, c.group, self.consumer, c.batch_size, timeout=c.poll_timeout
        )
        deadline = self.clock() + c.batch_timeout
        while batch and len(batch) < c.batch_size:
            left = deadline - self.clock()
            if left <= 0:
                break
            more = self.bus.consume(
                c.topic, c.group, self.consumer, c.batch_size - len(batch), timeout=left
            )
            if not more:
                break
            batch.extend(more)
        return batch

    def run_once(self) -> BatchResult | None:
        """One pass: refresh the index if due, take a batch, enqueue, acknowledge."""
        # Always drain the change feed: the first call also creates this instance's group.
        changed = self._definitions_changed()
        self.refresh_index(force=changed or self._index_built_at is None)
        batch = self._collect()
        if not batch:
            return None
        result = self.handle(batch)
        # Acknowledge only after the runs are committed: a crash before here redelivers.
        self.bus.ack(self.config.topic, self.config.group, batch)
        return result

    def close(self) -> None:
        """Forget this instance's change-feed group (the signal group stays: it is shared)."""
        try:
            self.bus.delete_group(PIPELINE_EVENTS, self._changes_group)
        except Exception as exc:  # best effort on the way out
            log.debug("could not delete group %s: %s", self._changes_group, exc)

    def update_lag(self) -> int | None:
        try:
            self.metrics.lag = self.bus.lag(self.config.topic, self.config.group)
        except Exception as exc:  # lag is informative only; never stop dispatching for it
            log.debug("consumer lag unavailable: %s", exc)
        return self.metrics.lag

    def run_forever(
        self,
        stop: threading.Event | GracefulShutdown | None = None,
        on_tick: Callable[[Dispatcher], object] | None = None,
    ) -> None:
        """Dispatch until ``stop`` is set (or a SIGTERM reaches a :class:`GracefulShutdown`).

        A bus outage is retried with backoff, and the loop resumes from the group's
        committed position (messages not acknowledged come back). ``on_tick`` is called
        every few seconds (the service writes the metrics snapshot there).
        """
        stop = stop or threading.Event()
        stopped = stop.is_set if isinstance(stop, threading.Event) else lambda: stop.requested
        failures = 0
        last_tick = float("-inf")
        log.info(
            "dispatcher %s consuming %s as group %s",
            self.consumer,
            self.config.topic,
            self.config.group,
        )
        try:
            while not stopped():
                try:
                    self.run_once()
                    failures = 0
                except BackendUnavailableError as exc:
                    self.metrics.bus_errors += 1
                    failures += 1
                    # Exponential backoff with jitter, capped: 0.5 s, 1 s, 2 s … 30 s.
                    pause = min(0.5 * 2 ** (failures - 1), 30.0) * random.uniform(0.8, 1.2)
                    log.warning("dispatcher: %s — retrying in %.1f s", exc, pause)
                    stop.wait(pause)
                if self.clock() - last_tick >= 2.0:
                    last_tick = self.clock()
                    if failures == 0:
                        self.update_lag()
                    if on_tick is not None:
                        on_tick(self)
        finally:
            if on_tick is not None:
                on_tick(self)
