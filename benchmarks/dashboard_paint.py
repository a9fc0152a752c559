"""Dashboard: first paint and charts drawn on the Breadth page, 5,000 symbols × 10 years.

    .venv/bin/python benchmarks/dashboard_paint.py                    # 5,000 × 2,520, 3 loads
    .venv/bin/python benchmarks/dashboard_paint.py --symbols 500 --repeat 1   # quick look

Uses the synthetic lake of benchmarks/breadth.py (written once under benchmarks/.data/,
reused). ``breadthflow serve --no-scheduler --no-worker --no-dispatcher`` serves it from a
fresh home (``BREADTHFLOW_LAKE_URL`` pointing at that lake); Playwright drives Debian's
Chromium (headless) to ``/ui/breadth?universe=synthetic-5000&…&hl_window=252``. Per load,
from navigation start:

- ``first paint``   the browser's first-contentful-paint (the page, its nav and empty
                    chart frames, server-rendered)
- ``charts drawn``  the page's status says ``ready``: the browser fetched
                    ``/ui/data/breadth`` (the server computed the whole breadth table from
                    the lake) and uPlot drew all six charts (2,520 points each)

Each load is a fresh page (no browser cache between loads); the server keeps running.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from breadth import START, end_date, lake_dir, prepare

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BREADTHFLOW_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = HERE / ".data" / "breadth"
    prepare(work, args.symbols, args.days)
    lake = lake_dir(work, args.symbols, args.days)
    home = Path(tempfile.mkdtemp(prefix="bf-paint-")) / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env.update(BREADTHFLOW_HOME=str(home), BREADTHFLOW_LAKE_URL=lake.resolve().as_uri(),
               BREADTHFLOW_LOG_JSON="false")  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "serve", "--port", str(port), "--no-scheduler",
         "--no-worker", "--no-dispatcher"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    url = (f"{base}/ui/breadth?universe=synthetic-{args.symbols}&start={START}"
           f"&end={end_date(args.days)}&hl_window=252")  # fmt: skip
    loads = []
    try:
        from playwright.sync_api import sync_playwright

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for i in range(args.repeat + 1):  # the first load warms the server up
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                t0 = time.perf_counter()
                page.goto(url, wait_until="commit")
                page.wait_for_selector('[data-testid="breadth-status"][data-state="ready"]',
                                       timeout=600_000)  # fmt: skip
                drawn = time.perf_counter() - t0
                fcp = page.evaluate(
                    "() => (performance.getEntriesByName('first-contentful-paint')[0] || {})"
                    ".startTime"
                )
                dates = page.evaluate("() => document.querySelector('#breadth-status').textContent")
                if i:
                    loads.append({"first_paint_s": (fcp or float("nan")) / 1000,
                                  "charts_s": drawn, "status": dates})  # fmt: skip
                print(f"load {i}: first paint {fcp:.0f} ms, charts drawn {drawn:.2f} s",
                      file=sys.stderr)  # fmt: skip
                context.close()
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    fp = statistics.median(x["first_paint_s"] for x in loads)
    ch = statistics.median(x["charts_s"] for x in loads)
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.symbols:,} symbols × {args.days:,} days, "
          f"median of {args.repeat} loads")  # fmt: skip
    print(f"page status: {loads[-1]['status']}")
    print("\n| measure | median s | loads s |")
    print("|---|---:|---:|")
    measures = (("first paint", "first_paint_s", fp), ("charts drawn", "charts_s", ch))
    for label, key, median in measures:
        each = ", ".join(f"{x[key]:.2f}" for x in loads)
        print(f"| {label} | {median:.2f} | {each} |")


if __name__ == "__main__":
    sys.exit(main())
