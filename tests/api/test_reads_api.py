"""Read routes over a seeded home (sample bars, signals, a backtest, a scan): each answers
what the service (what the CLI prints) answers."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from fastapi.testclient import TestClient

from breadthflow.services import breadth, signals
from breadthflow.services.context import AppContext
from tests.api.conftest import SAMPLE_END


@pytest.fixture
def api(seeded: AppContext, client: TestClient) -> TestClient:
    return client


# --- signals ----------------------------------------------------------------------------


def test_signals_page_matches_the_service(api: TestClient, seeded: AppContext) -> None:
    rows, total = signals.list_signals(seeded, None, limit=10)
    body = api.get("/api/v1/signals", params={"limit": 10}).json()
    assert body["total"] == total > 10
    assert body["next_offset"] == 10
    assert [(s["symbol"], s["date"]) for s in body["items"]] == [
        (s.symbol, s.date.isoformat()) for s in rows
    ]


def test_signals_filters(api: TestClient) -> None:
    buys = api.get("/api/v1/signals", params={"signal_type": "buy", "limit": 1000}).json()
    aapl = api.get("/api/v1/signals", params={"symbol": "AAPL", "since": "2010-06-01"}).json()
    assert buys["total"] > 0 and {s["signal_type"] for s in buys["items"]} == {"BUY"}
    assert aapl["items"] and all(
        s["symbol"] == "AAPL" and s["date"] >= "2010-06-01" for s in aapl["items"]
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"signal_type": "MAYBE"}, "BUY, SELL or HOLD"),
        ({"strategy": "sma_crss"}, "sma_cross"),
        ({"since": "2010-13-01"}, "2010-13-01"),
        ({"since": "2010-06-01", "until": "2010-01-01"}, "swap"),
    ],
)
def test_signal_filters_refuse_bad_values(api: TestClient, params: dict, fragment: str) -> None:
    response = api.get("/api/v1/signals", params=params)
    assert 400 <= response.status_code < 500
    assert fragment in response.json()["detail"]


def test_signals_export_csv_and_parquet_hold_every_match(api: TestClient) -> None:
    total = api.get("/api/v1/signals", params={"symbol": "MSFT"}).json()["total"]
    as_csv = api.get("/api/v1/signals/export", params={"symbol": "MSFT", "format": "csv"})
    as_parquet = api.get("/api/v1/signals/export", params={"symbol": "MSFT", "format": "parquet"})

    from_csv = pl.read_csv(io.BytesIO(as_csv.content))
    from_parquet = pl.read_parquet(io.BytesIO(as_parquet.content))

    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_parquet.headers["content-disposition"]
    assert from_csv.height == from_parquet.height == total > 0
    assert list(from_csv.columns) == list(signals.EXPORT_COLUMNS)
    assert set(from_parquet["symbol"]) == {"MSFT"}
    assert json.loads(from_parquet["factors"][0])  # factors as JSON text
    assert api.get("/api/v1/signals/export", params={"format": "xlsx"}).status_code == 422


def test_signals_summary_and_strategies(api: TestClient) -> None:
    summary = api.get("/api/v1/signals/summary").json()
    catalog = api.get("/api/v1/strategies").json()
    assert [s["strategy"] for s in summary] == ["sma_cross"]
    assert summary[0]["buy"] + summary[0]["sell"] == summary[0]["signals"]
    assert "sma_cross" in {s["name"] for s in catalog["strategies"]}


# --- breadth ------------------------------------------------------------------------------


def test_breadth_matches_the_service(api: TestClient, seeded: AppContext) -> None:
    expected = breadth.compute_breadth(seeded, "2010-01-04", "2010-03-31", universe="demo_small")
    records = api.get("/api/v1/breadth", params={"universe": "demo_small",
                      "start": "2010-01-04", "end": "2010-03-31"}).json()  # fmt: skip
    columns = api.get("/api/v1/breadth", params={"universe": "demo_small",
                      "start": "2010-01-04", "end": "2010-03-31",
                      "orient": "columns"}).json()  # fmt: skip

    assert records["columns"] == expected.columns
    assert len(records["rows"]) == expected.height
    assert [r["advances"] for r in records["rows"]] == expected["advances"].to_list()
    assert columns["data"]["ad_line"] == expected["ad_line"].to_list()
    assert columns["data"]["date"][0] == "2010-01-04"


def test_breadth_refuses_bad_requests(api: TestClient) -> None:
    missing = api.get("/api/v1/breadth", params={"universe": "demo_small"})
    unknown = api.get("/api/v1/breadth", params={"universe": "sp5000", "start": "2010-01-04",
                                                 "end": "2010-02-01"})  # fmt: skip
    empty = api.get("/api/v1/breadth", params={"universe": "demo_small", "start": "1990-01-01",
                                               "end": "1990-02-01"})  # fmt: skip
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "start"
    assert unknown.status_code == 404 and "sp5000" in unknown.json()["detail"]
    assert empty.status_code == 404 and "fetch them first" in empty.json()["detail"]


# --- backtests -------------------------------------------------------------------------------


def test_backtest_list_detail_equity_trades_report(api: TestClient, seeded: AppContext) -> None:
    from breadthflow.services.backtest import show_backtest

    listed = api.get("/api/v1/backtests").json()
    backtest_id = listed["items"][0]["id"]
    _, stored = show_backtest(seeded, backtest_id)
    detail = api.get(f"/api/v1/backtests/{backtest_id}").json()
    equity = api.get(f"/api/v1/backtests/{backtest_id}/equity").json()
    trades = api.get(f"/api/v1/backtests/{backtest_id}/trades", params={"limit": 2}).json()
    report = api.get(f"/api/v1/backtests/{backtest_id}/report")

    assert listed["total"] == 1
    assert detail["strategy"] == "sma_cross" and detail["status"] == "succeeded"
    assert equity["rows"][-1]["equity"] == pytest.approx(detail["stats"]["equity_final"])
    assert equity["rows"][0]["date"] == "2010-01-04"
    assert trades["total"] == stored["trades"].height > 0
    assert trades["items"][0]["symbol"] == stored["trades"]["symbol"][0]
    assert len(trades["items"]) == min(2, trades["total"])
    assert report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text.lower() and "sma_cross" in report.text


def test_an_unknown_backtest_is_404(api: TestClient) -> None:
    for suffix in ("", "/equity", "/trades", "/report"):
        assert api.get(f"/api/v1/backtests/999{suffix}").status_code == 404
    assert api.get("/api/v1/backtests/abc").status_code == 422


# --- scans ---------------------------------------------------------------------------------


def test_scans_list_and_detail(api: TestClient) -> None:
    listed = api.get("/api/v1/scans").json()
    scan = api.get(f"/api/v1/scans/{listed['items'][0]['id']}").json()
    assert listed["total"] == 1
    assert scan["formula"] == "close > sma(close, 20)"
    assert scan["matches"]["total"] == scan["symbols_matched"] == len(scan["matches"]["items"])
    assert api.get("/api/v1/scans/999").status_code == 404


def test_run_a_scan(api: TestClient, writer: dict[str, str]) -> None:
    response = api.post(
        "/api/v1/scans",
        json={"formula": "close > sma(close, 50)", "universe": "demo_small", "on": SAMPLE_END},
        headers=writer,
    )
    body = response.json()
    assert response.status_code == 201, body
    assert body["id"] == 2 and body["universe"] == "demo_small"
    assert all(m["date"] == SAMPLE_END for m in body["matches"])
    assert api.get("/api/v1/scans").json()["total"] == 2


def test_a_bad_formula_names_line_and_column(api: TestClient, writer: dict[str, str]) -> None:
    response = api.post("/api/v1/scans", json={"formula": "close > smaa(close, 5)",
                        "universe": "demo_small", "on": SAMPLE_END}, headers=writer)  # fmt: skip
    check = api.get("/api/v1/scans/check", params={"formula": "close > smaa(close, 5)"}).json()
    good = api.get("/api/v1/scans/check", params={"formula": "rsi(close, 14) < 30"}).json()
    assert response.status_code == 422
    assert response.json()["line"] == 1 and response.json()["column"] == 9
    assert check["ok"] is False and check["column"] == 9 and "smaa" in check["error"]
    assert good["ok"] is True


def test_scan_payload_needs_exactly_one_symbol_source(
    api: TestClient, writer: dict[str, str]
) -> None:
    response = api.post("/api/v1/scans", json={"formula": "close > 1", "on": SAMPLE_END},
                        headers=writer)  # fmt: skip
    assert response.status_code == 422
    assert "exactly one" in response.json()["errors"][0]["reason"]


# --- data and universes ------------------------------------------------------------------------


def test_data_summary_and_coverage(api: TestClient) -> None:
    summary = api.get("/api/v1/data/summary").json()
    coverage = api.get("/api/v1/data/coverage").json()
    daily = summary["timeframes"][0]
    assert daily["timeframe"] == "1d" and daily["symbols"] == 8 == len(coverage)
    assert daily["rows"] == sum(c["rows"] for c in coverage)
    assert api.get("/api/v1/data/coverage", params={"timeframe": "2d"}).status_code == 422


def test_universes(api: TestClient, writer: dict[str, str]) -> None:
    names = {u["name"] for u in api.get("/api/v1/universes").json()}
    small = api.get("/api/v1/universes/demo_small").json()
    created = api.post("/api/v1/universes", json={"name": "mine", "symbols": "aapl,msft"},
                       headers=writer)  # fmt: skip
    duplicate = api.post("/api/v1/universes", json={"name": "dups", "symbols": ["A", "A"]},
                         headers=writer)  # fmt: skip
    assert {"demo_small", "dow30"} <= names
    assert small["builtin"] is True and len(small["symbols"]) == 8
    assert created.status_code == 201 and created.json()["symbols"] == ["AAPL", "MSFT"]
    assert api.get("/api/v1/universes/mine").json()["symbols"] == ["AAPL", "MSFT"]
    assert duplicate.status_code == 422
    assert api.delete("/api/v1/universes/mine", headers=writer).status_code == 204
    assert api.get("/api/v1/universes/mine").status_code == 404
    assert api.delete("/api/v1/universes/dow30", headers=writer).status_code == 422


def test_root_points_at_the_docs_without_the_dashboard(api: TestClient) -> None:
    body = api.get("/").json()
    assert body["docs"] == "/docs"
    assert api.get("/openapi.json").json()["info"]["title"] == "BreadthFlow API"


def test_root_sends_the_browser_to_the_dashboard_with_its_token(ctx: AppContext) -> None:
    from breadthflow.api.app import create_app

    with TestClient(create_app(ctx.settings, ctx=ctx)) as client:
        response = client.get("/?token=bf_abc", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/?token=bf_abc"
