"""The HTML backtest report: self-contained, escaped, bounded in size, sections as present."""

from __future__ import annotations

import datetime as dt
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from breadthflow.backtest import _svg
from breadthflow.backtest.report import render_report, write_report
from breadthflow.core.errors import InvalidInputError

START = dt.date(2010, 1, 4)
TRADE_SCHEMA = {
    "symbol": pl.String, "direction": pl.String, "entry_date": pl.Date,
    "entry_price": pl.Float64, "exit_date": pl.Date, "exit_price": pl.Float64,
    "shares": pl.Float64, "pnl": pl.Float64, "return_pct": pl.Float64, "fees": pl.Float64,
    "bars_held": pl.Int64, "is_open": pl.Boolean, "exit_reason": pl.String,
}  # fmt: skip
STATS = {
    "total_return_pct": 12.345,
    "cagr_pct": 4.1,
    "sharpe": 0.91,
    "max_drawdown_pct": -8.5,
    "n_trades": 3,
    "win_rate_pct": 66.6667,
}
ALL_SECTIONS = (
    "summary", "equity", "drawdown", "trade-markers", "stats", "trades", "optimization",
    "walk-forward", "monte-carlo",
)  # fmt: skip
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


# --- builders -----------------------------------------------------------------------------


def days(n: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def equity_frame(values: np.ndarray | list[float], start: dt.date = START) -> pl.DataFrame:
    eq = np.asarray(values, dtype=float)
    return pl.DataFrame(
        {
            "date": days(eq.size, start),
            "equity": eq,
            "cash": eq * 0.5,
            "exposure": np.full(eq.size, 0.5),
            "drawdown": eq / np.maximum.accumulate(eq) - 1,
        }
    )


def trade(symbol: str, entry: int, exit_: int | None, price: float = 100.0, **kw: Any) -> dict:
    is_open = exit_ is None
    exit_price = None if is_open else price * 1.05
    row = {
        "symbol": symbol, "direction": "long", "entry_date": START + dt.timedelta(days=entry),
        "entry_price": price, "exit_date": None if is_open else START + dt.timedelta(days=exit_),
        "exit_price": exit_price, "shares": 10.0, "pnl": None if is_open else price * 0.5,
        "return_pct": None if is_open else 5.0, "fees": 0.2,
        "bars_held": (exit_ or entry + 3) - entry, "is_open": is_open,
        "exit_reason": None if is_open else "signal",
    }  # fmt: skip
    row.update(kw)
    return row


def trades_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=TRADE_SCHEMA)


def prices_frame(symbols: list[str], n: int) -> pl.DataFrame:
    return pl.concat(
        pl.DataFrame({"symbol": [s] * n, "date": days(n), "close": 100 + np.arange(n) * 0.1})
        for s in symbols
    )


def optimization_frame(fast: list[int], slow: list[int], skip: int = 0) -> pl.DataFrame:
    rows = [
        {"fast": f, "slow": s, "stage": "coarse", "sharpe": f / 10 + s / 100, "n_trades": 5}
        for f in fast
        for s in slow
    ][skip:]
    return pl.DataFrame(rows).sort("sharpe", descending=True)


def fan_frame(steps: int) -> pl.DataFrame:
    base = 10_000 * (1 + np.linspace(0, 0.2, steps))
    return pl.DataFrame(
        {"step": np.arange(steps)}
        | {f"p{p}": base * (1 + (p - 50) / 500) for p in (5, 25, 50, 75, 95)}
    )


def basic(**overrides: Any) -> str:
    rows = [trade("AAPL", 1, 10), trade("MSFT", 5, 20), trade("AAPL", 30, None)]
    kwargs: dict[str, Any] = {
        "title": "sma_cross(fast=10, slow=30) on dow30",
        "equity": equity_frame(10_000 + np.arange(60) * 10.0),
        "trades": trades_frame(rows),
        "stats": STATS,
        "generated_at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    }  # fmt: skip
    kwargs.update(overrides)
    return render_report(**kwargs)


def full_report() -> str:
    folds = pl.DataFrame(
        {
            "fold": [1, 2],
            "train_start": [START, START + dt.timedelta(days=20)],
            "train_end": [START + dt.timedelta(days=19), START + dt.timedelta(days=39)],
            "test_start": [START + dt.timedelta(days=20), START + dt.timedelta(days=40)],
            "test_end": [START + dt.timedelta(days=39), START + dt.timedelta(days=59)],
            "params": ["fast=5, slow=20", "fast=10, slow=30"],
            "in_sample": [1.1, 0.8],
            "out_of_sample": [0.4, -0.1],
        }
    )
    montecarlo = {
        "method": "trades",
        "paths": 1000,
        "seed": 7,
        "ruin_level": 0.5,
        "prob_ruin": 0.012,
        "final_return_pct": {"p5": -10.0, "p25": 2.0, "p50": 8.0, "p75": 15.0, "p95": 30.0},
        "max_drawdown_pct": {"p5": -30.0, "p25": -20.0, "p50": -12.0, "p75": -8.0, "p95": -4.0},
        "fan": fan_frame(40),
    }
    return basic(
        prices=prices_frame(["AAPL", "MSFT"], 60),
        benchmark=pl.DataFrame({"date": days(60), "equity": 10_000 + np.arange(60) * 5.0}),
        params={"fast": 10, "slow": 30},
        config={"cash": 10_000.0, "fees": 0.001, "slippage": 0.0005, "execution": "open"},
        optimization=optimization_frame([5, 10, 15], [20, 30, 40, 50]),
        grid_params=["fast", "slow"],
        objective="sharpe",
        montecarlo=montecarlo,
        walkforward=folds,
    )


# --- parsing helpers ----------------------------------------------------------------------


class TagChecker(HTMLParser):
    """Every non-void element closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: Counter[str] = Counter()
        self.attrs: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] += 1
        self.attrs.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] += 1
        self.attrs.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def check_html(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert html.startswith("<!DOCTYPE html>")
    for tag in ("html", "head", "body", "main", "section", "svg"):
        assert checker.counts[tag] >= 1, tag
    return checker


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def section_ids(html: str) -> set[str]:
    return set(re.findall(r'<section id="([^"]+)"', html))


def section(html: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">.*?</section>', html, flags=re.S)
    assert match, sid
    return match.group(0)


def polyline_points(svg: ET.Element) -> list[np.ndarray]:
    out = []
    for line in svg.iter("polyline"):
        pts = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
        out.append(np.array(pts))
    return out


def values_of(svg: ET.Element, pixel_y: np.ndarray) -> np.ndarray:
    """Pixel y back to data values with the chart's own scale."""
    y0, y1 = float(svg.get("data-y0")), float(svg.get("data-y1"))
    py0, py1 = float(svg.get("data-py0")), float(svg.get("data-py1"))
    return y0 + (py0 - pixel_y) / (py0 - py1) * (y1 - y0)


# --- tests --------------------------------------------------------------------------------


def test_full_report_is_balanced_html_with_every_section() -> None:
    html = full_report()
    checker = check_html(html)
    assert checker.counts["table"] >= 6  # settings, stats ×2, trades, optimisation, folds, …
    assert section_ids(html) == set(ALL_SECTIONS)
    for sid in ALL_SECTIONS:
        assert f'href="#{sid}"' in html
    assert len(svgs(html)) >= 6  # equity, drawdown, 2 symbols, heatmap, fan
    assert "2024-01-02 03:04:05 UTC" in html
    assert "+12.35 %" in html  # total return card
    assert "66.67 %" in html  # win rate, two decimals


def test_sections_without_data_are_left_out() -> None:
    html = basic()
    check_html(html)
    assert section_ids(html) == {"summary", "equity", "drawdown", "stats", "trades"}
    for absent in ("trade-markers", "optimization", "walk-forward", "monte-carlo"):
        assert f'href="#{absent}"' not in html
    assert "heatmap" not in html


def test_report_has_no_external_references() -> None:
    html = full_report()
    checker = check_html(html)
    assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html
    for tag, attrs in checker.attrs:
        assert "src" not in attrs, tag
        assert tag != "link"
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href


def test_user_text_is_escaped() -> None:
    title = "A & B <script>alert(1)</script>"
    html = basic(
        title=title,
        trades=trades_frame([trade("<b>X", 1, 10, exit_reason='"quoted" <i>')]),
        prices=prices_frame(["<b>X"], 30),
        params={"<k>": "<v>"},
    )
    check_html(html)
    assert "<script>alert" not in html
    assert "A &amp; B &lt;script&gt;" in html
    assert "<b>X" not in html
    assert "&lt;b&gt;X" in html
    assert "<i>" not in html and "&lt;i&gt;" in html
    assert "<k>" not in html and "<v>" not in html
    for svg in svgs(html):  # the symbol also reaches SVG text and titles, still well-formed
        assert svg is not None


def test_heatmap_draws_one_cell_per_pair_of_grid_values() -> None:
    table = optimization_frame([5, 10, 15], [20, 30, 40, 50], skip=1)  # (5, 20) missing
    html = basic(optimization=table, grid_params=["fast", "slow"], objective="sharpe")
    check_html(html)
    heat = [s for s in svgs(html) if "heatmap" in s.get("class", "")]
    assert len(heat) == 1
    cells = [r for r in heat[0].iter("rect") if r.get("class", "").startswith("cell")]
    assert len(cells) == 12
    assert sum(r.get("class") == "cell empty" for r in cells) == 1
    titles = [r.find("title").text for r in cells]
    assert "fast=15, slow=50: sharpe 2.00" in titles


def test_heatmap_only_for_two_grid_parameters() -> None:
    table = optimization_frame([5, 10, 15], [20, 30])
    html = basic(optimization=table, grid_params=["fast"], objective="sharpe")
    assert "optimization" in section_ids(html)
    assert not [s for s in svgs(html) if "heatmap" in s.get("class", "")]


def test_optimization_table_shows_the_top_twenty() -> None:
    table = optimization_frame(list(range(1, 8)), list(range(20, 26)))  # 42 combinations
    html = basic(optimization=table, grid_params=["fast", "slow"], objective="sharpe")
    opt = section(html, "optimization")
    first_table = re.search(r"<table.*?</table>", opt, flags=re.S).group(0)
    assert first_table.count("<tr>") == 21  # header + 20
    assert "Top 20 of 42" in opt


def test_downsample_keeps_extremes_and_bounds_points() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(100_000, dtype=float)
    y = rng.normal(0, 1, x.size).cumsum()
    y[31_337], y[77_777] = 1e6, -1e6
    dx, dy = _svg.downsample(x, y, 1_500)
    assert dx.size <= 1_500
    assert dy.max() == 1e6 and dy.min() == -1e6
    assert dx[0] == 0 and dx[-1] == x[-1]
    assert np.all(np.diff(dx) > 0)


def test_long_curve_is_drawn_with_at_most_1500_points_per_line_keeping_extremes() -> None:
    n = 100_000
    eq = 10_000 + np.sin(np.arange(n) / 500) * 100
    eq[60_001] = 15_000  # a one-day spike
    eq[80_003] = 2_000  # and a one-day crash
    html = basic(equity=equity_frame(eq, dt.date(1800, 1, 1)))
    charts = [s for s in svgs(html) if "bf-line" in s.get("class", "")]
    equity_svg, drawdown_svg = charts[0], charts[1]
    for svg in charts:
        for pts in polyline_points(svg):
            assert 2 <= len(pts) <= 1_500
    (line,) = polyline_points(equity_svg)
    drawn = values_of(equity_svg, line[:, 1])
    assert drawn.max() == pytest.approx(15_000, abs=10)
    assert drawn.min() == pytest.approx(2_000, abs=10)
    (dd,) = polyline_points(drawdown_svg)
    assert values_of(drawdown_svg, dd[:, 1]).min() == pytest.approx(-86.7, abs=0.1)


def test_big_run_stays_small() -> None:
    n_days, n_trades = 2_520, 5_000
    rng = np.random.default_rng(1)
    symbols = [f"S{i:02d}" for i in range(30)]
    entries = rng.integers(0, n_days - 20, n_trades)
    frame = pl.DataFrame(
        {
            "symbol": rng.choice(symbols, n_trades),
            "direction": rng.choice(["long", "short"], n_trades),
            "entry_date": [START + dt.timedelta(days=int(d)) for d in entries],
            "entry_price": rng.uniform(50, 150, n_trades),
            "exit_date": [START + dt.timedelta(days=int(d) + 10) for d in entries],
            "exit_price": rng.uniform(50, 150, n_trades),
            "shares": np.full(n_trades, 10.0),
            "pnl": rng.normal(0, 50, n_trades),
            "return_pct": rng.normal(0, 5, n_trades),
            "fees": np.full(n_trades, 0.5),
            "bars_held": np.full(n_trades, 10),
            "is_open": np.zeros(n_trades, dtype=bool),
            "exit_reason": ["signal"] * n_trades,
        }
    )
    html = basic(
        equity=equity_frame(10_000 * np.cumprod(1 + rng.normal(0, 0.01, n_days))),
        trades=frame,
        prices=prices_frame(symbols, n_days),
    )
    check_html(html)
    assert len(html.encode()) < 3_000_000
    markers = section(html, "trade-markers")
    assert markers.count('<figure class="chart-box small">') == 12
    assert "18 more traded symbols omitted" in markers
    trades_html = section(html, "trades")
    assert "200 most recent of 5,000 trades" in trades_html
    assert trades_html.count("<tr>") == 201


def test_trade_list_shows_the_most_recent_first() -> None:
    rows = [trade("AAPL", i, i + 2) for i in range(250)]
    html = basic(trades=trades_frame(rows))
    trades_html = section(html, "trades")
    assert trades_html.count("<tr>") == 201
    dates = re.findall(r"<td>(\d{4}-\d{2}-\d{2})</td>", trades_html)
    assert dates[0] == (START + dt.timedelta(days=249)).isoformat()
    assert (START + dt.timedelta(days=10)).isoformat() not in dates  # older than the 200


def test_trade_markers_are_drawn_per_side_with_titles() -> None:
    rows = [trade("AAPL", 1, 10), trade("AAPL", 20, 30, direction="short"), trade("AAPL", 40, None)]
    html = basic(trades=trades_frame(rows), prices=prices_frame(["AAPL"], 60))
    (chart,) = [s for s in svgs(section(html, "trade-markers"))]
    marks = [p for p in chart.iter("path") if p.get("class") == "marker"]
    assert len(marks) == 5  # three entries, two exits (one trade still open)
    titles = [m.find("title").text for m in marks]
    assert sum(t.startswith("short") for t in titles) == 2
    assert any("exit" in t and "P&L +50.00" in t for t in titles)


def test_empty_trade_list_still_renders() -> None:
    html = basic(trades=trades_frame([]), prices=prices_frame(["AAPL"], 60), stats={})
    check_html(html)
    assert "No trades." in section(html, "trades")
    assert "trade-markers" not in section_ids(html)
    assert "No statistics." in html


def test_missing_nan_and_infinite_values_are_safe() -> None:
    eq = 10_000 + np.arange(50) * 10.0
    eq[10], eq[20] = np.nan, np.inf
    stats = {"sqn": None, "calmar": float("nan"), "profit_factor": float("inf"),
             "exposure_pct": 12.3456, "sharpe": np.float64(1.5)}  # fmt: skip
    rows = [trade("AAPL", 1, 10, pnl=None, return_pct=float("nan"), entry_price=float("inf"))]
    html = basic(equity=equity_frame(eq), stats=stats, trades=trades_frame(rows),
                 prices=prices_frame(["AAPL"], 50))  # fmt: skip
    check_html(html)
    table = section(html, "stats")
    assert table.count("—") >= 2
    assert "∞" in table
    assert "12.35 %" in table
    assert "nan" not in html.lower().replace("nan(", "")
    assert "inf<" not in html


def test_walk_forward_and_monte_carlo_sections() -> None:
    html = full_report()
    wf = section(html, "walk-forward")
    assert wf.count("<tr>") == 3  # header + 2 folds
    assert "fast=10, slow=30" in wf
    mc = section(html, "monte-carlo")
    assert "1.20 %" in mc  # probability of ruin
    (fan,) = svgs(mc)
    assert len(list(fan.iter("polygon"))) == 2  # p5–p95 and p25–p75 bands
    assert "-12.00 %" in mc  # median max drawdown in the percentile table


def test_write_report_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    assert write_report(target, "<p>one</p>") == target
    write_report(target, "<p>two</p>")
    assert target.read_text() == "<p>two</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]

    moves: list[tuple[str, str]] = []
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        moves.append((str(src), str(dst)))
        assert Path(src).read_text() == "<p>three</p>"  # fully written before the rename
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk pulled out"):
        write_report(target, "<p>three</p>")
    monkeypatch.setattr(os, "replace", real_replace)
    assert Path(moves[0][0]).parent == tmp_path  # the temporary file sits beside the target
    assert target.read_text() == "<p>two</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_write_report_refuses_a_path_not_ending_in_html(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    with pytest.raises(InvalidInputError) as info:
        write_report(target, "<p>x</p>")
    message = str(info.value)
    assert "\n" not in message and str(target) in message and ".html" in message
    assert not target.exists()
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_report(tmp_path / "missing" / "report.html", "<p>x</p>")
