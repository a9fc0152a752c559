"""HTTP API under load: 50 concurrent clients in a second process, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/api_load.py                    # both databases, 3 × 10 s each
    .venv/bin/python benchmarks/api_load.py --db sqlite --seconds 5 --repeat 1   # quick look

Set-up (untimed): a fresh metadata DB holding 100,000 signals (500 symbols × 200 days of
one strategy, seeded) and 2,000 finished runs of 20 pipelines; then ``breadthflow serve
--no-scheduler --no-worker`` (one uvicorn process, the API as users run it) on a free
loopback port. The load comes from a separate process: ``--clients`` asyncio tasks, each
with keep-alive, sending GETs back to back for ``--seconds`` per endpoint:

- ``/api/v1/runs``      the runs page (newest first, 50 a page, with pipeline names)
- ``/api/v1/signals``   the signals page (newest first, 50 a page)
- ``/api/v1/signals?symbol=S0042&limit=100``   a filtered page

Reports requests/s, p50/p99 latency and errors per endpoint and database (median of the
repeats), and the server's peak RSS. PostgreSQL is the test server on 127.0.0.1:5432
(a throw-away database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ENDPOINTS = ["/api/v1/runs", "/api/v1/signals", "/api/v1/signals?symbol=S0042&limit=100"]
PG_ADMIN = os.environ.get(
    "BREADTHFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(db_url: str, home: Path) -> None:
    from breadthflow.core.config import Settings
    from breadthflow.services.context import AppContext
    from breadthflow.store.models import PipelineRow, PipelineRunRow, SignalRow, utcnow

    ctx = AppContext(Settings(home=home, database_url=db_url))
    rng = random.Random(5)
    now = utcnow()
    with ctx.db.session() as session:
        for p in range(20):
            session.add(PipelineRow(
                name=f"bench-{p:02d}", kind="breadth", mode="demo", symbols=[], universe=None,
                provider="sample", schedule="1d", timezone="UTC", trigger_mode="periodic",
                scanner_tickers=[], parameters={}, retry_policy={}, error_policy="retry",
                notifications={}, is_active=False, created_at=now, updated_at=now,
            ))  # fmt: skip
    with ctx.db.session() as session:
        for i in range(2000):
            start = now - dt.timedelta(minutes=5 * i)
            session.add(PipelineRunRow(
                run_id=f"run-{i:06d}", pipeline_id=1 + i % 20, trigger="schedule",
                trigger_payload={}, status=rng.choice(["succeeded", "succeeded", "failed"]),
                scheduled_for=start, queued_at=start, start_time=start,
                end_time=start + dt.timedelta(seconds=30), duration=30.0,
                symbols_processed=40, signals_generated=50, error_count=0, attempt=1,
                config_snapshot={},
            ))  # fmt: skip
    day0 = dt.date(2020, 1, 1)
    rows = []
    for s in range(500):
        for d in range(200):
            rows.append({
                "symbol": f"S{s:04d}", "date": day0 + dt.timedelta(days=d), "timeframe": "1d",
                "strategy": "sma_cross", "signal_type": rng.choice(["BUY", "SELL", "HOLD"]),
                "confidence": rng.random(), "strength": rng.random(), "factors": {"x": 1},
                "create_time": now, "pipeline_run_id": "",
            })  # fmt: skip
    with ctx.db.engine.begin() as conn:
        for i in range(0, len(rows), 10_000):
            conn.execute(SignalRow.__table__.insert(), rows[i : i + 10_000])


async def _load(base: str, path: str, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await http.get(path)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": errors,
    }


def load_child(base: str, path: str, clients: int, seconds: float) -> dict:
    """Run the load generator in its own process (so it does not share the server's GIL)."""
    code = (
        "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import api_load; "
        "print(json.dumps(asyncio.run(api_load._load(sys.argv[2], sys.argv[3], "
        "int(sys.argv[4]), float(sys.argv[5])))))"
    )
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", code, here, base, path, str(clients), str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def server_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_db(kind: str, args: argparse.Namespace) -> list[dict]:
    import sqlalchemy as sa

    tmp = Path(tempfile.mkdtemp(prefix="bf-api-bench-"))
    home = tmp / "home"
    pg_name = None
    if kind == "postgresql":
        pg_name = f"bf_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
        db_url = sa.make_url(PG_ADMIN).set(database=pg_name).render_as_string(False)
    else:
        db_url = f"sqlite:///{home / 'breadthflow.db'}"
    seed(db_url, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env.update(BREADTHFLOW_HOME=str(home), BREADTHFLOW_DATABASE_URL=db_url,
               BREADTHFLOW_LOG_JSON="false")  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "serve", "--port", str(port), "--no-scheduler",
         "--no-worker", "--no-web"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health", timeout=2).status_code < 600:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for path in ENDPOINTS:
            load_child(base, path, args.clients, 1.0)  # warm-up
            runs = [load_child(base, path, args.clients, args.seconds) for _ in range(args.repeat)]
            results.append({
                "db": kind, "endpoint": path,
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
            })  # fmt: skip
            print(f"{kind} {path}: {results[-1]['rps']:.0f} req/s", file=sys.stderr)
        peak = server_peak_mb(server.pid)
        for r in results:
            r["server_peak_mb"] = peak
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if pg_name:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    rows = [r for kind in kinds for r in bench_db(kind, args)]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.clients} clients × {args.seconds:g} s, "
          f"median of {args.repeat}; 100,000 signals, 2,000 runs")  # fmt: skip
    print("\n| db | endpoint | req/s | p50 ms | p99 ms | errors | server peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['db']} | `{r['endpoint']}` | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['errors']} | {r['server_peak_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
