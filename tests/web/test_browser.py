"""The dashboard in a real browser: Playwright driving Debian's Chromium against `serve`.

One journey through a real ``breadthflow serve`` process: log in with the token it
printed, create a pipeline in the form, run it, watch the run appear and finish without
reloading, open its drill-down and logs, run a scan, open a backtest chart. Screenshots
of each page go to ``artifacts/`` (CI keeps them).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, missing_service

CHROMIUM = os.environ.get("BREADTHFLOW_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """`breadthflow serve` on a free port with a fresh home: (base URL, admin token, home)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        missing_service(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    home = tmp_path_factory.mktemp("browser") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREADTHFLOW_")}
    env.update(BREADTHFLOW_HOME=str(home), BREADTHFLOW_LOG_JSON="false")
    port = free_port()
    # Output to a file, not a pipe: a server that logs more than a pipe holds (a scan's
    # per-symbol warnings) must never block on a reader that stopped reading.
    log_path = home.parent / "serve.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "breadthflow", "serve", "--port", str(port), "--concurrency", "1"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    token = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and token is None and proc.poll() is None:
        found = re.search(r"[?&]token=([A-Za-z0-9_\-]+)", log_path.read_text())
        token = found.group(1) if found else None
        time.sleep(0.2)
    if token is None:
        proc.kill()
        pytest.fail("serve printed no token:\n" + log_path.read_text())
    _wait_http(base + "/health", 60)
    try:
        yield base, token, home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def _wait_http(url: str, seconds: float) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 600:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds} s")


@pytest.fixture(scope="module")
def page(server: tuple[str, str, Path]) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_the_dashboard_journey_in_a_real_browser(server, page) -> None:
    from playwright.sync_api import expect

    base, token, _home = server

    # Log in with a wrong token, then with the one `serve` printed.
    page.goto(base + "/ui/login")
    page.get_by_test_id("login-token").fill("wrong-token")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-result")).to_contain_text(re.compile("invalid|unknown|not"))
    page.get_by_test_id("login-token").fill(token)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("auth-status")).to_contain_text(re.compile("admin|write"))
    _shot(page, "login")

    # Create a pipeline in the form.
    page.goto(base + "/ui/pipelines/new")
    page.get_by_test_id("pf-name").fill("browser-demo")
    page.get_by_test_id("pf-mode").select_option("custom_symbols")
    page.get_by_test_id("pf-symbols").fill("AAPL, MSFT, IBM, XOM, GE, JPM, PG, KO, PFE, INTC")
    page.get_by_test_id("pf-schedule").fill("1d")
    page.get_by_test_id("pf-parameters").fill(
        '{"start": "2009-08-21", "end": "2010-08-20", "hl_window": 50}'
    )
    _shot(page, "pipeline-form")
    page.get_by_test_id("pf-submit").click()
    page.wait_for_url(re.compile(r"/ui/pipelines"), timeout=30_000)
    row = page.get_by_test_id("pipeline-row").filter(has_text="browser-demo")
    expect(row).to_have_count(1)
    _shot(page, "pipelines")

    # Run it now and watch it appear and finish on the runs page, live (no reload).
    page.goto(base + "/ui/runs")
    marker = page.evaluate("() => (window.__bfMarker = Math.random())")
    page.goto(base + "/ui/pipelines")
    row = page.get_by_test_id("pipeline-row").filter(has_text="browser-demo")
    row.get_by_test_id("pipeline-run-now").click()
    page.goto(base + "/ui/runs")
    marker = page.evaluate("() => (window.__bfMarker = Math.random())")
    run_row = page.get_by_test_id("run-row").filter(has_text="browser-demo").first
    expect(run_row).to_be_visible(timeout=60_000)
    expect(run_row.get_by_test_id("run-status")).to_have_attribute(
        "data-status", re.compile("succeeded|partial"), timeout=240_000
    )
    assert page.evaluate("() => window.__bfMarker") == marker, "the runs page was reloaded"
    _shot(page, "runs")

    # Its drill-down: steps as a timeline, counts and the log.
    run_row.get_by_test_id("run-link").first.click()
    expect(page.get_by_test_id("run-timeline")).to_be_visible()
    expect(page.get_by_test_id("timeline-step")).to_have_count(4, timeout=30_000)
    expect(page.get_by_test_id("run-log")).to_contain_text(re.compile(r"\w+"), timeout=30_000)
    expect(page.get_by_test_id("run-counts")).to_be_visible()
    _shot(page, "run-detail")

    # A backtest chart: the run's backtest, its equity curve drawn.
    page.get_by_test_id("run-backtest").first.click()
    expect(page.get_by_test_id("chart-equity").locator("canvas").first).to_be_visible(
        timeout=30_000
    )
    expect(page.get_by_test_id("bt-stats")).to_contain_text(re.compile("[Ss]harpe"))
    _shot(page, "backtest")

    # A scan with an inline error, then a real one.
    page.goto(base + "/ui/scanner")
    page.get_by_test_id("scan-formula").fill("close > smaa(close, 20)")
    expect(page.get_by_test_id("scan-check")).to_contain_text("did you mean 'sma'")
    page.get_by_test_id("scan-formula").fill("close > sma(close, 20)")
    expect(page.get_by_test_id("scan-check")).not_to_contain_text("did you mean")
    page.get_by_test_id("scan-run").click()
    # A finished scan opens its own page (?scan=ID) with the matches table.
    page.wait_for_url(re.compile(r"scan=\d+"), timeout=120_000)
    expect(page.get_by_test_id("scan-matches")).to_be_visible()
    expect(page.get_by_test_id("match-row").first).to_be_visible()
    _shot(page, "scanner")

    # Every other page renders without a script error.
    for path in ("/ui/", "/ui/breadth", "/ui/signals", "/ui/backtests", "/ui/commands",
                 "/ui/triggers", "/ui/infrastructure"):  # fmt: skip
        page.goto(base + path)
        expect(page.get_by_test_id("nav")).to_be_visible()
        _shot(page, path.removeprefix("/ui/").strip("/") or "overview")
    assert page.js_errors == []
