"""Trigger dispatcher: matching throughput, and publish → run-enqueued through real buses.

    .venv/bin/python benchmarks/dispatch.py                 # 3 runs per case, ≈ 3 min
    .venv/bin/python benchmarks/dispatch.py --repeat 1 --signals 200000   # quick look

Set-up (untimed, once per case in a fresh child process): a SQLite metadata DB with
10,000 active ``trigger_mode=signal`` pipelines, each watching 3 tickers drawn (seeded)
from a 5,000-symbol universe — so a ticker triggers 6 pipelines on average.

Cases:

- ``match-B``  in-process: 1,000,000 already-decoded signals (random tickers and
               confidences, seeded) through ``Dispatcher.handle_signals`` in batches of B
               — the index lookup, the strongest-signal-per-pipeline choice, and the batch's
               DB transaction (one query for "already queued or running", inserts for the
               rest). Reports signals/s and DB queries per batch (target: 1).
- ``embedded`` / ``redis``  end to end through a real bus — the SQLite log of the embedded
               bus, or Redis Streams on 127.0.0.1:6379 — in two phases: (1) throughput:
               N signal events are published (timed apart), then the dispatcher drains
               them: signals/s from consume to runs committed and acknowledged; (2)
               latency: a publisher thread sends ``--rate`` signals/s for
               ``--latency-seconds`` while the dispatcher runs; p50/p99 of each event's time
               from publish to the commit of the runs its batch queued.

The first batches queue a run for every pipeline; from then on all 10,000 are busy
(nothing runs them here), so the steady state is the skip path — the common case under a
flood of signals, and the one the single idempotency query exists for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _harness import peak_rss_mb, run_cases

PIPELINES = 10_000
UNIVERSE = 5_000
TICKERS_EACH = 3


def setup_db(work: Path):
    from breadthflow.core.config import Settings
    from breadthflow.services.context import AppContext
    from breadthflow.store.models import PipelineRow, utcnow

    settings = Settings(home=work, database_url=f"sqlite:///{work / 'meta.db'}")
    ctx = AppContext(settings)
    rng = random.Random(7)
    universe = [f"S{i:05d}" for i in range(UNIVERSE)]
    base = {
        "kind": "breadth", "mode": "custom_symbols", "universe": None, "provider": "sample",
        "schedule": None, "timezone": "UTC", "trigger_mode": "signal", "parameters": {},
        "retry_policy": {}, "error_policy": "retry", "notifications": {}, "is_active": True,
    }  # fmt: skip
    now = utcnow()
    with ctx.db.session() as session:  # one transaction: set-up is not what is measured
        for i in range(PIPELINES):
            tickers = rng.sample(universe, TICKERS_EACH)
            row = PipelineRow(
                **base, name=f"p{i:05d}", symbols=tickers, scanner_tickers=tickers,
                created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
    return ctx, universe


def case_match(args: argparse.Namespace, batch: int) -> dict:
    from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig
    from breadthflow.triggers.index import TriggerSignal

    with tempfile.TemporaryDirectory() as tmp:
        ctx, universe = setup_db(Path(tmp))
        rng = random.Random(11)
        words = ("BULLISH", "BEARISH", "NEUTRAL")
        signals = [
            TriggerSignal(rng.choice(universe), rng.choice(words), float(rng.randint(0, 100)))
            for _ in range(args.signals)
        ]
        dispatcher = Dispatcher(None, ctx.db, DispatcherConfig(batch_size=batch))  # type: ignore[arg-type]
        dispatcher.refresh_index(force=True)
        started = time.perf_counter()
        for i in range(0, len(signals), batch):
            dispatcher.handle_signals(signals[i : i + batch])
        seconds = time.perf_counter() - started
        m = dispatcher.metrics.snapshot()
        return {
            "seconds": seconds,
            "signals_per_s": args.signals / seconds,
            "batches": m["batches"],
            "queries_per_batch": m["db_queries_per_batch"],
            "enqueued": m["enqueued"],
            "skipped": m["skipped"],
            "peak_mb": peak_rss_mb(),
        }


def case_bus(args: argparse.Namespace, kind: str) -> dict:
    from breadthflow.bus import Event, open_bus
    from breadthflow.triggers.dispatcher import Dispatcher, DispatcherConfig

    with tempfile.TemporaryDirectory() as tmp:
        ctx, universe = setup_db(Path(tmp))
        if kind == "redis":
            bus = open_bus("redis://127.0.0.1:6379/0", ctx.settings)
        else:
            bus = open_bus("sqlite", ctx.settings, ctx.db)
        topic = f"bench-signals-{uuid.uuid4().hex[:8]}"
        rng = random.Random(13)

        def signal() -> dict:
            return {"ticker": rng.choice(universe), "signal": "BULLISH",
                    "confidence": rng.randint(0, 100)}  # fmt: skip

        def events(count: int) -> list:
            return [Event(type="signals.bench", data={"tickers": [signal()]}) for _ in range(count)]

        config = DispatcherConfig(topic=topic, batch_size=args.bus_batch, batch_timeout=0.05,
                                  poll_timeout=0.2)  # fmt: skip
        dispatcher = Dispatcher(bus, ctx.db, config, consumer="bench")
        dispatcher.refresh_index(force=True)
        bus.consume(topic, config.group, "bench", 1, timeout=0)  # create the group
        # 1. Throughput: a backlog of N signals, drained (publish timed apart).
        n = args.bus_signals
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            bus.publish(topic, events(min(1000, n - start)))
        publish_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        while dispatcher.metrics.received < n:
            dispatcher.run_once()
        drain_s = time.perf_counter() - t0
        enqueued = dispatcher.metrics.enqueued
        # 2. Latency: signals published at a steady rate below capacity, dispatched live.
        dispatcher.metrics.event_latencies.clear()
        rate, seconds = args.rate, args.latency_seconds
        total = int(rate * seconds)
        stop = threading.Event()

        def publish_paced() -> None:
            t_start = time.perf_counter()
            for i in range(0, total, 10):
                wait = t_start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                bus.publish(topic, events(10))
            stop.set()

        publisher = threading.Thread(target=publish_paced)
        publisher.start()
        goal = n + total
        while dispatcher.metrics.received < goal:
            dispatcher.run_once()
        publisher.join()
        lat = sorted(dispatcher.metrics.event_latencies)
        bus.delete_group(topic, config.group)
        bus.close()
        return {
            "seconds": drain_s,
            "signals_per_s": n / drain_s,
            "publish_per_s": n / publish_s,
            "enqueued": enqueued,
            "rate": rate,
            "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "latency_samples": len(lat),
            "peak_mb": peak_rss_mb(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--bus-signals", type=int, default=20_000)
    parser.add_argument("--bus-batch", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0, help="signals/s of the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--batches", default="20,1000", help="batch sizes of the match cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case")
    args = parser.parse_args()
    if args.case:
        if args.case.startswith("match-"):
            result = case_match(args, int(args.case.split("-")[1]))
        else:
            result = case_bus(args, args.case)
        print(json.dumps(result))
        return
    cases = [f"match-{b}" for b in args.batches.split(",")] + ["embedded", "redis"]
    forwarded = ["--signals", str(args.signals), "--bus-signals", str(args.bus_signals),
                 "--bus-batch", str(args.bus_batch), "--rate", str(args.rate),
                 "--latency-seconds", str(args.latency_seconds)]  # fmt: skip
    results = run_cases(__file__, cases, args.repeat, forwarded)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {PIPELINES:,} signal pipelines × "
          f"{TICKERS_EACH} tickers of {UNIVERSE:,}")  # fmt: skip
    print("\n| case | signals | median s | signals/s | vs 10,000/s | queries/batch | "
          "p50 ms | p99 ms | peak MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, runs in results.items():
        med = statistics.median(r["seconds"] for r in runs)
        rate = statistics.median(r["signals_per_s"] for r in runs)
        count = args.signals if case.startswith("match") else args.bus_signals
        qpb = runs[0].get("queries_per_batch")
        p50 = statistics.median(r["p50_ms"] for r in runs) if "p50_ms" in runs[0] else None
        p99 = statistics.median(r["p99_ms"] for r in runs) if "p99_ms" in runs[0] else None
        peak = max(r["peak_mb"] for r in runs)
        print(
            f"| {case} | {count:,} | {med:.2f} | {rate:,.0f} | {rate / 10_000:.1f}× | "
            f"{'' if qpb is None else f'{qpb:.2f}'} | {'' if p50 is None else f'{p50:.1f}'} | "
            f"{'' if p99 is None else f'{p99:.1f}'} | {peak:.0f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
