"""The dashboard (``breadthflow.web.router``) on a home loaded with the sample provider.

A small FastAPI app includes only the dashboard router, so these tests hold whatever the
API app does. One home is prepared per session (fetch, signals, two pipeline runs — one
started by a signal —, a backtest, an optimisation, a Monte Carlo, a scan, an alert) and
every page is read from it; pages only read, so sharing it is safe.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from breadthflow.core.config import get_settings
from breadthflow.core.models import Timeframe
from breadthflow.indicators.breadth import BREADTH_COLUMNS
from breadthflow.services import backtest as backtest_svc
from breadthflow.services import breadth as breadth_svc
from breadthflow.services import data as data_svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services import scan as scan_svc
from breadthflow.services import signals as signals_svc
from breadthflow.services.context import AppContext
from breadthflow.store.db import close_all
from breadthflow.store.models import AlertRow
from breadthflow.web import router
from breadthflow.web import routes as router_module

START, END = "2009-08-21", "2010-08-20"
UNIVERSE = "demo_small"
SIGNAL_PAYLOAD = {
    "ticker": "AAPL",
    "signal": "BULLISH",
    "confidence": 85,
    "time": "2026-01-02T15:00:00Z",
}
PAGES = (
    "/ui/", "/ui/breadth", "/ui/signals", "/ui/pipelines", "/ui/pipelines/new",
    "/ui/pipelines/small/edit", "/ui/runs", "/ui/backtests", "/ui/scanner", "/ui/commands",
    "/ui/triggers", "/ui/infrastructure", "/ui/login",
)  # fmt: skip


@pytest.fixture(scope="session")
def dashboard_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A home with everything the pages show, built through the service layer."""
    home = tmp_path_factory.mktemp("web") / "home"
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, home)
        ctx = AppContext()
        data_svc.fetch_bars(ctx, data_svc.FetchRequest("sample", START, END, universe=UNIVERSE))
        for strategy in ("breadth_composite", "sma_cross", "zweig_thrust"):
            signals_svc.generate_signals(ctx, strategy, START, END, universe=UNIVERSE, hl_window=50)
        pipelines_svc.create_pipeline(
            ctx,
            {
                "name": "small", "mode": "custom_symbols", "universe": UNIVERSE,
                "schedule": "1h", "parameters": {"start": START, "end": END, "hl_window": 50,
                                                 "strategies": ["breadth_composite"]},
            },
        )  # fmt: skip
        manual = pipelines_svc.run_now(ctx, "small")
        triggered = pipelines_svc.run_now(ctx, "small", "signal", SIGNAL_PAYLOAD)
        study = backtest_svc.prepare_study(
            ctx, "sma_cross", START, END, universe=UNIVERSE, params={"fast": 10, "slow": 30}
        )
        single = backtest_svc.run_backtest_study(ctx, study)
        grid = backtest_svc.typed_grid(study, {"fast": ["5", "10"], "slow": ["20", "30", "40"]})
        best, _ = backtest_svc.optimize_study(ctx, study, grid, refine=False)
        mc, _ = backtest_svc.monte_carlo_study(ctx, study, paths=200, method="daily")
        scan = scan_svc.run_scan(
            ctx, "close > sma(close, 20)", scan_svc.scan_range(START, END, None), universe=UNIVERSE
        )
        with ctx.db.session() as session:
            session.add(
                AlertRow(
                    rule="run_failed", severity="critical", message="<script>x()</script>disk full"
                )
            )
            session.add(
                AlertRow(
                    rule="slow_run",
                    severity="warning",
                    message="acknowledged already",
                    acknowledged_at=dt.datetime.now(dt.UTC),
                )
            )
        close_all()
        yield {
            "home": home,
            "manual_run": manual.run_id,
            "signal_run": triggered.run_id,
            "backtest": single.id,
            "optimize": best.id,
            "montecarlo": mc.extra["montecarlo_id"],
            "scan": scan.id,
        }
        close_all()
    get_settings.cache_clear()


def _clean_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    for key in list(os.environ):
        if key.startswith("BREADTHFLOW_") and key not in {
            "BREADTHFLOW_REQUIRE_SERVICES",
            "BREADTHFLOW_TEST_POSTGRES_URL",
        }:
            mp.delenv(key)
    mp.setenv("BREADTHFLOW_HOME", str(home))
    mp.setenv("BREADTHFLOW_LOG_JSON", "false")
    get_settings.cache_clear()
    close_all()


@pytest.fixture
def home(dashboard_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    _clean_env(monkeypatch, dashboard_home["home"])
    yield dashboard_home
    close_all()


@pytest.fixture
def ctx(home: dict[str, Any]) -> AppContext:
    return AppContext()


@pytest.fixture
def client(home: dict[str, Any]) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as test_client:
        yield test_client


VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _Text(HTMLParser):
    """The text inside the first element with a given ``data-testid``."""

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid, self.depth, self.found, self.parts = testid, 0, False, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag not in VOID
        elif not self.found and dict(attrs).get("data-testid") == self.testid:
            self.found, self.depth = True, 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(html: str, testid: str) -> str:
    """The visible text of the element with ``data-testid=testid``, spaces collapsed."""
    parser = _Text(testid)
    parser.feed(html)
    assert parser.found, f"no element with data-testid={testid}"
    return " ".join(" ".join(parser.parts).split())


def one_line_error(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    for fragment in fragments:
        assert fragment in detail, (fragment, detail)


# --- every page ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_the_nav_and_no_cdn(client, path):
    response = client.get(path)

    assert response.status_code == 200, response.text
    html = response.text
    assert 'data-testid="nav"' in html and "/ui/static/app.js" in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "a page loads something remote"


def test_pages_of_a_fresh_home_render_their_empty_state():
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as fresh:
        for path in (p for p in PAGES if "small" not in p):
            assert fresh.get(path).status_code == 200, path
        assert 'data-testid="empty-state"' in fresh.get("/ui/").text
        assert 'data-testid="empty-state"' in fresh.get("/ui/breadth").text
        one_line_error(fresh.get("/ui/data/breadth"), 422, "no daily bars stored")
        assert fresh.get("/ui/pipelines/small/edit").status_code == 404


def test_static_files_and_vendored_licences_are_served(client):
    vendored = ("uplot/uPlot.iife.min.js", "uplot/LICENSE", "htmx/htmx.min.js", "htmx/LICENSE")
    for path in ("app.js", "app.css", *(f"vendor/{v}" for v in vendored)):
        response = client.get(f"/ui/static/{path}")
        assert response.status_code == 200 and response.content, path
    assert client.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/static/../routes.py").status_code == 404
    assert client.get("/ui/static/%2e%2e/routes.py").status_code == 404


def test_vendored_files_match_the_checksums_in_their_readme():
    vendor = Path(router_module.__file__).parent / "static" / "vendor"
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (vendor / "README.md").read_text(), re.M)

    assert {name for _, name in listed} == {
        str(p.relative_to(vendor)) for p in vendor.rglob("*") if p.is_file() and p.parent != vendor
    }
    for digest, name in listed:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


# --- overview ------------------------------------------------------------------------------


def test_overview_kpis_count_the_stored_runs_signals_and_alerts(client, ctx):
    runs = pipelines_svc.list_runs(ctx, limit=1000)
    finished = [r for r in runs if r.status in ("succeeded", "partial", "failed", "cancelled")]
    mean = sum(r.duration for r in finished) / len(finished)
    _, total_signals = signals_svc.list_signals(ctx, limit=1)

    html = client.get("/ui/").text

    assert text_of(html, "kpi-runs") == "Runs 2 0 queued or running"
    assert "100.0%" in text_of(html, "kpi-success-rate")
    shown = re.search(r'data-testid="avg-duration" data-value="([^"]+)"', html)
    assert shown and float(shown.group(1)) == pytest.approx(mean)
    assert 'data-testid="success-rate" data-value="1.0"' in html
    assert f"{total_signals:,}" in text_of(html, "kpi-signals")
    assert text_of(html, "kpi-alerts") == "Open alerts 1 unacknowledged"  # not the acked one
    assert "&lt;script&gt;x()&lt;/script&gt;disk full" in html  # user text is escaped
    assert "<script>x()" not in html and "acknowledged already" not in html


def test_overview_regime_is_the_latest_breadth_composite_signal(client, ctx):
    rows, _ = signals_svc.list_signals(
        ctx, signals_svc.signal_filter(strategy="breadth_composite"), limit=1
    )
    expected = {"BUY": "risk-on", "SELL": "risk-off", "HOLD": "neutral"}[rows[0].signal_type]

    html = client.get("/ui/").text

    assert f'data-regime="{expected}"' in html
    assert f"{rows[0].symbol} · {rows[0].date}" in text_of(html, "kpi-regime")


# --- breadth ---------------------------------------------------------------------------------


def test_breadth_data_equals_the_breadth_service(client, ctx):
    response = client.get(
        "/ui/data/breadth",
        params={"universe": UNIVERSE, "start": "2009-10-01", "end": "2010-06-30", "hl_window": 50},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    table = breadth_svc.compute_breadth(
        ctx, "2009-10-01", "2010-06-30", universe=UNIVERSE, hl_window=50
    )
    assert list(body["columns"]) == list(BREADTH_COLUMNS)
    assert body["columns"]["date"] == [d.isoformat() for d in table["date"]]
    for name in ("ad_line", "mcclellan_osc", "mcclellan_sum", "pct_above_sma20", "new_highs",
                 "new_lows", "trin", "zbt"):  # fmt: skip
        expected = table[name].to_list()
        got = body["columns"][name]
        assert len(got) == len(expected)
        assert all(
            (a is None and (b is None or b != b)) or a == pytest.approx(b, rel=1e-12)
            for a, b in zip(got, expected, strict=True)
        ), name
    thrusts = table.filter(pl.col("zbt_thrust").fill_null(False))["date"]
    assert body["thrusts"] == [d.isoformat() for d in thrusts]


def test_breadth_markers_are_the_universe_buy_and_sell_signals_in_range(client, ctx):
    body = client.get("/ui/data/breadth", params={"universe": UNIVERSE}).json()

    where = signals_svc.signal_filter(symbol=UNIVERSE, since=body["start"], until=body["end"])
    rows, _ = signals_svc.list_signals(ctx, where, limit=10_000)
    expected = sorted(
        (s.date.isoformat(), s.strategy, s.signal_type.value)
        for s in rows
        if s.signal_type != "HOLD"
    )
    assert expected, "the sample year has market BUY/SELL signals"
    got = sorted((m["date"], m["strategy"], m["signal_type"]) for m in body["markers"])
    assert got == expected
    # No range given: the stored range and, for a one-year lake, the short high/low window.
    assert (body["start"], body["end"], body["hl_window"]) == (START, END, 50)


def test_breadth_markers_can_be_one_strategys(client, ctx):
    body = client.get(
        "/ui/data/breadth", params={"universe": UNIVERSE, "strategy": "zweig_thrust"}
    ).json()

    rows, _ = signals_svc.list_signals(
        ctx, signals_svc.signal_filter(strategy="zweig_thrust", symbol=UNIVERSE), limit=None
    )
    assert {m["strategy"] for m in body["markers"]} == {"zweig_thrust"}
    assert len(body["markers"]) == sum(1 for s in rows if s.signal_type != "HOLD") > 0
    one_line_error(
        client.get("/ui/data/breadth", params={"universe": UNIVERSE, "strategy": "zwieg"}),
        404,
        "zwieg",
    )


def test_breadth_page_defaults_to_the_stored_range(client):
    html = client.get("/ui/breadth").text

    assert f'value="{START}" data-testid="breadth-start"' in html
    assert f'value="{END}" data-testid="breadth-end"' in html
    assert f'value="{UNIVERSE}" data-testid="breadth-universe"' in html
    for chart in ("chart-ad-line", "chart-mcclellan", "chart-pct-above", "chart-highs-lows",
                  "chart-trin", "chart-zbt"):  # fmt: skip
        assert f'data-testid="{chart}"' in html


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"universe": UNIVERSE, "start": "2010-13-01"}, 422, "2010-13-01"),
        ({"universe": UNIVERSE, "start": "2010-06-01", "end": "2010-01-01"}, 422, "2010-06-01"),
        ({"universe": "sp5000"}, 404, "sp5000"),
        ({"universe": UNIVERSE, "hl_window": "abc"}, 422, "hl_window 'abc'"),
        ({"universe": UNIVERSE, "hl_window": "1"}, 422, "hl_window 1"),
        ({"universe": UNIVERSE, "start": "1990-01-01", "end": "1990-12-31"}, 404, "1990-01-01"),
    ],
)
def test_breadth_data_refuses_bad_params_in_one_line(client, params, status, fragment):
    one_line_error(client.get("/ui/data/breadth", params=params), status, fragment)


# --- signals ---------------------------------------------------------------------------------


def test_signals_table_shows_the_filtered_signals(client, ctx):
    where = signals_svc.signal_filter(strategy="sma_cross", signal_type="BUY")
    rows, total = signals_svc.list_signals(ctx, where, limit=50)

    html = client.get("/ui/signals", params={"strategy": "sma_cross", "type": "buy"}).text

    assert f'data-total="{total}"' in html
    assert html.count('data-testid="signal-row"') == len(rows) > 0
    assert "sig-SELL" not in html.split('data-testid="signals-table"')[1].split("</table>")[0]
    assert "export/signals.csv?strategy=sma_cross&amp;type=buy" in html


def test_signals_filter_by_universe_name_finds_market_signals(client, ctx):
    _, total = signals_svc.list_signals(ctx, signals_svc.signal_filter(symbol=UNIVERSE))

    html = client.get("/ui/signals", params={"symbol": UNIVERSE}).text

    assert total > 0 and f'data-total="{total}"' in html
    # Market-level rows have no candles: they link to the universe's breadth instead.
    assert f'data-symbol="{UNIVERSE}"' not in html
    assert f'href="/ui/breadth?universe={UNIVERSE}"' in html


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"type": "MAYBE"}, "MAYBE"),
        ({"strategy": "nope"}, "nope"),
        ({"since": "2010-05-01", "until": "2010-01-01"}, "swap"),
        ({"limit": "0"}, "limit 0"),
        ({"offset": "-3"}, "offset -3"),
    ],
)
def test_signals_page_with_a_bad_filter_is_a_4xx_page(client, params, fragment):
    response = client.get("/ui/signals", params=params)

    assert 400 <= response.status_code < 500
    assert fragment in text_of(response.text, "page-error")


def test_signal_export_matches_the_stored_rows(client, ctx):
    where = signals_svc.signal_filter(strategy="zweig_thrust")
    rows, total = signals_svc.list_signals(ctx, where, limit=None)

    response = client.get("/ui/export/signals.csv", params={"strategy": "zweig_thrust"})

    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert len(records) == total
    assert {(r["symbol"], r["date"], r["signal_type"]) for r in records} == {
        (s.symbol, s.date.isoformat(), s.signal_type.value) for s in rows
    }
    parquet = client.get("/ui/export/signals.parquet", params={"strategy": "zweig_thrust"})
    assert pl.read_parquet(io.BytesIO(parquet.content)).height == total
    one_line_error(client.get("/ui/export/signals.xlsx"), 422, ".xlsx")


def test_candles_are_the_stored_bars_with_the_symbols_signals(client, ctx):
    body = client.get(
        "/ui/data/candles", params={"symbol": "aapl", "start": "2010-01-01", "end": "2010-03-31"}
    ).json()

    bars = ctx.lake.read(["AAPL"], Timeframe.D1, dt.date(2010, 1, 1), dt.date(2010, 3, 31))
    assert body["symbol"] == "AAPL"
    assert body["columns"]["date"] == [d.isoformat() for d in bars["date"]]
    assert body["columns"]["close"] == pytest.approx(bars["close"].to_list())
    assert body["columns"]["high"] == pytest.approx(bars["high"].to_list())
    where = signals_svc.signal_filter(symbol="AAPL", since="2010-01-01", until="2010-03-31")
    rows, _ = signals_svc.list_signals(ctx, where, limit=None)
    assert sorted(m["date"] for m in body["markers"]) == sorted(
        s.date.isoformat() for s in rows if s.signal_type != "HOLD"
    )


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 422, "missing symbol"),
        ({"symbol": "AA PL$"}, 422, "AA PL$"),
        ({"symbol": "ZZZZ"}, 404, "ZZZZ"),
        ({"symbol": "AAPL", "start": "yesterday"}, 422, "yesterday"),
    ],
)
def test_candles_refuse_bad_params_in_one_line(client, params, status, fragment):
    one_line_error(client.get("/ui/data/candles", params=params), status, fragment)


# --- pipelines and runs ---------------------------------------------------------------------


def test_pipelines_page_lists_each_pipeline_with_status_and_controls(client):
    html = client.get("/ui/pipelines").text

    row = html.split('data-testid="pipeline-row" data-name="small"')[1].split("</tr>")[0]
    assert 'data-testid="pipeline-status" data-status="active"' in row
    assert 'data-testid="last-run-status" data-status="succeeded"' in row
    assert 'data-api="POST /api/v1/pipelines/small/run-now"' in row
    assert 'data-api="POST /api/v1/pipelines/small/stop"' in row


def test_pipeline_edit_form_is_filled_from_the_stored_definition(client):
    html = client.get("/ui/pipelines/small/edit").text

    assert 'value="small" required' in html and "readonly" in html
    assert "<option selected>custom_symbols</option>" in html
    assert f'value="{UNIVERSE}"' in html and 'value="1h"' in html
    assert "&#34;hl_window&#34;: 50" in html or '"hl_window": 50' in html
    assert client.get("/ui/pipelines/nope/edit").status_code == 404


def test_runs_page_and_trend_reflect_the_stored_runs(client, home, ctx):
    html = client.get("/ui/runs").text

    for run_id in (home["manual_run"], home["signal_run"]):
        assert f'data-run-id="{run_id}"' in html
    trend = client.get("/ui/data/runs").json()
    runs = sorted(pipelines_svc.list_runs(ctx), key=lambda r: r.queued_at)
    assert trend["columns"]["run_id"] == [r.run_id for r in runs]
    assert trend["columns"]["duration"] == pytest.approx([r.duration for r in runs])
    assert trend["columns"]["success_rate"] == [1.0, 1.0]
    one_line_error(client.get("/ui/data/runs", params={"limit": "x"}), 422, "limit 'x'")
    response = client.get("/ui/runs", params={"status": "exploded"})
    assert response.status_code == 422 and "exploded" in text_of(response.text, "page-error")


def test_run_drill_down_shows_steps_counts_parameters_and_logs(client, home, ctx):
    run, steps = pipelines_svc.run_detail(ctx, home["manual_run"])

    html = client.get(f"/ui/runs/{run.run_id}").text

    timeline = re.findall(
        r'data-testid="timeline-step" data-step="(\w+)" data-status="(\w+)"', html
    )
    assert timeline == [(s.name, s.status) for s in steps]
    assert text_of(html, "run-signals") == str(run.signals_generated)
    assert text_of(html, "run-symbols") == str(run.symbols_processed)
    assert "step backtest succeeded" in html
    assert 'data-testid="trigger-signal"' not in html
    assert "&#34;hl_window&#34;: 50" in html or '"hl_window": 50' in html
    assert client.get("/ui/runs/nope").status_code == 404


def test_a_signal_triggered_run_shows_its_signal(client, home):
    html = client.get(f"/ui/runs/{home['signal_run']}").text

    assert text_of(html, "trigger-ticker") == "AAPL"
    assert text_of(html, "trigger-bias") == "BULLISH"
    assert text_of(html, "trigger-confidence") == "85"


def test_run_logs_endpoint_returns_lines_after_an_id(client, home, ctx):
    lines = pipelines_svc.run_logs(ctx, home["manual_run"])

    body = client.get(f"/ui/data/runs/{home['manual_run']}/logs").json()
    after = client.get(
        f"/ui/data/runs/{home['manual_run']}/logs", params={"after_id": lines[2].id}
    ).json()

    assert body["status"] == "succeeded"
    assert [line["message"] for line in body["lines"]] == [line.message for line in lines]
    assert [line["id"] for line in after["lines"]] == [line.id for line in lines[3:]]
    one_line_error(client.get("/ui/data/runs/nope/logs"), 404, "nope")


def test_triggers_page_counts_signal_runs_by_bias(client, home):
    html = client.get("/ui/triggers").text

    assert text_of(html, "trigger-runs") == "1"
    table = html.split('data-testid="trigger-by-bias"')[1].split("</table>")[0]
    assert re.search(r"<td>BULLISH</td><td[^>]*>1</td><td[^>]*>1</td><td[^>]*>1</td>"
                     r"<td[^>]*>100.0%</td>", table)  # fmt: skip
    assert 'data-testid="dispatcher-state"' in html


# --- backtests and scans -------------------------------------------------------------------


def test_backtest_data_is_the_stored_equity_with_its_drawdown(client, home, ctx):
    _, frames = backtest_svc.show_backtest(ctx, home["backtest"])
    equity = frames["equity"]

    body = client.get(f"/ui/data/backtests/{home['backtest']}").json()

    assert body["equity"]["date"] == [d.isoformat() for d in equity["date"]]
    assert body["equity"]["equity"] == pytest.approx(equity["equity"].to_list())
    values = equity["equity"].to_numpy()
    peak = [max(values[: i + 1]) for i in range(len(values))]
    expected = [(v / p - 1) * 100 for v, p in zip(values, peak, strict=True)]
    assert body["equity"]["drawdown_pct"] == pytest.approx(expected)
    one_line_error(client.get("/ui/data/backtests/999999"), 404, "999999")


def test_backtest_page_shows_stats_and_trades(client, home, ctx):
    summary, frames = backtest_svc.show_backtest(ctx, home["backtest"])

    html = client.get(f"/ui/backtests/{home['backtest']}").text

    assert f'data-stat="n_trades">{summary.stats["n_trades"]}<' in html
    assert html.count('data-testid="trade-row"') == min(frames["trades"].height, 200)
    assert 'data-testid="chart-equity"' in html and 'data-testid="chart-drawdown"' in html
    _, total = backtest_svc.list_backtests(ctx, limit=1)
    listing = client.get("/ui/backtests").text
    assert listing.count('data-testid="backtest-row"') == total == 6  # 2 runs' + 4 here
    only = client.get("/ui/backtests", params={"kind": "montecarlo"}).text
    assert only.count('data-testid="backtest-row"') == 1
    assert client.get("/ui/backtests", params={"kind": "magic"}).status_code == 422


def test_optimisation_heatmap_holds_the_best_objective_per_cell(client, home, ctx):
    summary, _ = backtest_svc.show_backtest(ctx, home["optimize"])
    table = summary.stats["table"]

    html = client.get(f"/ui/backtests/{home['optimize']}").text

    heat = html.split('data-testid="bt-heatmap"')[1].split("</table>")[0]
    cells = [float(v) for v in re.findall(r'data-value="([^"]+)"', heat)]
    assert len(cells) == 6  # fast 5,10 × slow 20,30,40
    expected = {}
    for row in table:
        key = (row["fast"], row["slow"])
        expected[key] = max(row["sharpe"], expected.get(key, float("-inf")))
    order = [(f, s) for s in (20, 30, 40) for f in (5, 10)]
    assert cells == pytest.approx([expected[k] for k in order])


def test_monte_carlo_page_has_the_fan(client, home, ctx):
    _, frames = backtest_svc.show_backtest(ctx, home["montecarlo"])

    html = client.get(f"/ui/backtests/{home['montecarlo']}").text
    body = client.get(f"/ui/data/backtests/{home['montecarlo']}").json()

    assert 'data-testid="chart-fan"' in html
    assert body["fan"]["p50"] == pytest.approx(frames["fan"]["p50"].to_list())
    assert body["fan"]["step"] == frames["fan"]["step"].to_list()


def test_scanner_shows_a_scan_and_its_matches(client, home, ctx):
    _, matches = scan_svc.show_scan(ctx, home["scan"])

    html = client.get("/ui/scanner", params={"scan": home["scan"]}).text

    assert html.count('data-testid="match-row"') == min(matches.height, 500)
    assert "close &gt; sma(close, 20)" in html
    response = client.get("/ui/scanner", params={"scan": "abc"})
    assert response.status_code == 422 and "abc" in text_of(response.text, "page-error")


def test_scan_check_reports_the_error_and_its_position(client):
    good = client.get("/ui/data/scan/check", params={"formula": "close > sma(close, 50)"}).json()
    bad = client.get("/ui/data/scan/check", params={"formula": "close > smaa(close, 50)"}).json()

    assert good["ok"] is True and good["needs_breadth"] is False
    assert bad["ok"] is False and "smaa" in bad["error"]
    assert (bad["line"], bad["column"]) == (1, 9)
    assert client.get("/ui/data/scan/check").json()["ok"] is False


# --- commands, infrastructure, auth --------------------------------------------------------


def test_commands_page_has_a_form_per_command_and_the_quick_flows(client):
    html = client.get("/ui/commands").text

    for command in ("data_summary", "data_fetch", "signal_generate", "signal_summary",
                    "backtest_run", "pipeline_start", "pipeline_stop", "pipeline_status",
                    "pipeline_logs", "scan"):  # fmt: skip
        assert f'data-command="{command}" data-testid="command-{command}"' in html
    for flow in ("demo", "small", "medium", "full"):
        assert f'data-testid="flow-{flow}"' in html


def test_infrastructure_shows_each_configured_component(client, home):
    html = client.get("/ui/infrastructure").text

    for key in ("database", "lake", "bus", "executor", "engine"):
        assert f'data-testid="node-{key}"' in html
    assert str(home["home"] / "breadthflow.db") in html


def test_login_check_accepts_a_real_token_and_refuses_others(client, ctx):
    from breadthflow.services import tokens

    new = tokens.create_token(ctx, "web-test", "read")

    good = client.post("/ui/auth/check", json={"token": new.token})
    bad = client.post("/ui/auth/check", json={"token": "bf_not-a-token"})

    assert good.status_code == 200 and good.json()["scope"] == "read"
    assert good.json()["can_write"] is False
    assert bad.status_code == 401 and bad.json()["ok"] is False
    tokens.revoke_token(ctx, "web-test")


def test_pages_need_a_token_when_the_api_requires_one_for_reads(
    client, ctx, monkeypatch: pytest.MonkeyPatch
):
    from breadthflow.services import tokens

    monkeypatch.setenv("BREADTHFLOW_API_READ_REQUIRES_TOKEN", "true")
    get_settings.cache_clear()
    new = tokens.create_token(ctx, "web-reader", "read")

    assert client.get("/ui/runs").status_code == 401
    assert client.get("/ui/login").status_code == 200
    bearer = {"Authorization": f"Bearer {new.token}"}
    assert client.get("/ui/runs", headers=bearer).status_code == 200
    client.cookies.set("bf_token", new.token)
    assert client.get("/ui/data/runs").status_code == 200
    tokens.revoke_token(ctx, "web-reader")
