"""The HTML backtest report: one self-contained file to open in any browser, offline.

:func:`render_report` turns a backtest's frames (equity curve, trades, stats, and when
given prices, a benchmark, an optimisation table, walk-forward folds, a Monte Carlo
summary) into one HTML document: inline CSS, charts as inline SVG (see ``_svg``), a few
lines of plain script for hover read-outs, nothing fetched from anywhere. Every piece of
user text (titles, symbols, parameter names) is escaped. Long series are downsampled with
their extremes kept, and long tables are cut (the most recent trades, the top of the
optimisation ranking) with a note, so a 5,000-trade, ten-year run stays a small file.

:func:`write_report` writes it atomically::

    html = render_report(title="sma_cross on dow30", equity=eq, trades=tr, stats=st)
    write_report(Path("report.html"), html)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from breadthflow.backtest import _svg
from breadthflow.backtest._svg import esc
from breadthflow.core.errors import InvalidInputError

MAX_TRADE_ROWS = 200
MAX_SYMBOL_CHARTS = 12
MAX_TRADES_PER_CHART = 150  # most recent; more triangles than this only hide the price
MAX_OPTIMIZATION_ROWS = 20
MAX_HEATMAP_CELLS = 40_000

DASH = "—"
EQUITY_COLOR = "#2563eb"
BENCHMARK_COLOR = "#6b7280"
LONG_COLOR = "#2563eb"
SHORT_COLOR = "#d97706"
WIN_COLOR = "#1a7f37"
LOSS_COLOR = "#cf222e"
PRICE_COLOR = "#374151"

TRADE_COLUMNS = (
    "symbol",
    "direction",
    "entry_date",
    "entry_price",
    "exit_date",
    "exit_price",
    "shares",
    "pnl",
    "return_pct",
    "fees",
    "bars_held",
    "exit_reason",
)
# Headline cards: label, the stats keys that may hold the value (first present wins), style.
CARDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Total return", ("total_return_pct",), "signed_pct"),
    ("CAGR", ("cagr_pct",), "signed_pct"),
    ("Sharpe", ("sharpe", "sharpe_ratio"), "signed"),
    ("Max drawdown", ("max_drawdown_pct",), "drawdown"),
    ("Trades", ("n_trades", "trades", "num_trades"), "count"),
    ("Win rate", ("win_rate_pct",), "pct"),
)
_WORDS = {
    "pct": "%",
    "cagr": "CAGR",
    "sqn": "SQN",
    "pnl": "P&L",
    "ann": "ann.",
    "n": "#",
    "mae": "MAE",
    "mfe": "MFE",
    "var": "VaR",
    "cvar": "CVaR",
    "id": "ID",
    "avg": "avg.",
}
_LABELS = {"n_trades": "Trades", "pnl": "P&L"}


def render_report(
    *,
    title: str,
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    stats: Mapping[str, Any],
    prices: pl.DataFrame | None = None,
    benchmark: pl.DataFrame | None = None,
    params: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    optimization: pl.DataFrame | None = None,
    grid_params: Sequence[str] | None = None,
    objective: str | None = None,
    montecarlo: Mapping[str, Any] | None = None,
    walkforward: pl.DataFrame | None = None,
    generated_at: dt.datetime | None = None,
) -> str:
    """The complete HTML document for one backtest (or one optimisation, walk-forward or
    Monte Carlo study). Sections appear only when their data is given and not empty; the
    summary cards, the stats table and the trade list ("no trades") are always there.

    ``equity``: date, equity, drawdown (fraction, <= 0; computed when missing).
    ``trades``: symbol, direction, entry/exit date and price, shares, pnl, return_pct, ….
    ``stats``: snake_case metric → value; keys ending in ``_pct`` are already in percent.
    ``prices``: long bars (symbol, date, close) for the markers-over-price charts.
    ``optimization``: the ranked grid, best first; a heatmap when ``grid_params`` names
    exactly two of its columns. ``montecarlo``: what ``research.monte_carlo`` returns.
    """
    generated = generated_at or dt.datetime.now(dt.UTC)
    stats = {str(k): _plain(v) for k, v in stats.items()}
    if objective is None and optimization is not None:
        objective = _infer_objective(optimization, grid_params)
    sections: list[tuple[str, str, str]] = [
        ("summary", "Summary", _summary_section(stats, trades, benchmark))
    ]
    curve = _equity_frame(equity)
    if curve is not None:
        sections.append(("equity", "Equity", _equity_section(curve, benchmark)))
        sections.append(("drawdown", "Drawdown", _drawdown_section(curve)))
    if prices is not None and _has(prices, "symbol", "date", "close") and _traded(trades):
        sections.append(("trade-markers", "Trades on price", _markers_section(trades, prices)))
    sections.append(("stats", "Statistics", _stats_section(stats)))
    sections.append(("trades", "Trade list", _trades_section(trades)))
    if optimization is not None and optimization.height:
        sections.append(
            (
                "optimization",
                "Optimisation",
                _optimization_section(optimization, grid_params, objective),
            )
        )
    if walkforward is not None and walkforward.height:
        sections.append(
            ("walk-forward", "Walk-forward", _walkforward_section(walkforward, objective))
        )
    if montecarlo:
        sections.append(("monte-carlo", "Monte Carlo", _montecarlo_section(montecarlo)))
    return _document(title, generated, params or {}, config or {}, sections)


def write_report(path: Path, html: str) -> Path:
    """Write ``html`` to ``path`` atomically (a temporary file in the same folder, synced,
    then renamed over the target): a reader sees the old report or the new one, never
    half of one. Refuses a path that does not end in ``.html`` or whose folder is missing."""
    path = Path(path)
    if path.suffix.lower() != ".html":
        raise InvalidInputError(
            f"cannot write a report to '{path}' — expected a path ending in .html"
        )
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"cannot write a report to '{path}' — folder {folder} does not exist; create it first"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(html)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- values -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: Any) -> float | None:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_pct(key: str) -> bool:
    return "pct" in key.lower().split("_")


def _num(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 0.01:
        return f"{v:,.2f}"
    return f"{v:.3g}"


def _setting(key: str, value: Any) -> str:
    """Parameters and settings as the user wrote them: ``0.0015`` stays ``0.0015``."""
    value = _plain(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) < 1e6:
        return f"{value:g}"
    return fmt_value(key, value)


def fmt_value(key: str, value: Any) -> str:
    """A value as shown in the report's tables: ``_pct`` keys with two decimals and
    ``%``, missing and NaN values as ``—``, dates as ISO dates."""
    value = _plain(value)
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        v = float(value)
        if math.isnan(v):
            return DASH
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if _is_pct(key):
            return f"{v:,.2f} %"
        return f"{value:,}" if isinstance(value, int) else _num(v)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        days = value.total_seconds() / 86_400
        return f"{days:,.0f} days" if days >= 1 else str(value)
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, default=str)
        return text if len(text) <= 300 else text[:299] + "…"
    return str(value)


def _signed(v: float | None, suffix: str = "") -> str:
    if v is None:
        return DASH
    return f"{v:+,.2f}{suffix}"


def _tone(v: float | None) -> str:
    if v is None or v == 0:
        return ""
    return "pos" if v > 0 else "neg"


def _price(v: Any) -> str:
    f = _finite(v)
    if f is None:
        return DASH
    return f"{f:,.2f}" if abs(f) >= 1 else f"{f:.4f}"


def label(key: str) -> str:
    """``max_drawdown_pct`` → ``Max drawdown %``."""
    if key in _LABELS:
        return _LABELS[key]
    words = [_WORDS.get(w.lower(), w) for w in str(key).split("_") if w]
    text = " ".join(words) or str(key)
    return text[:1].upper() + text[1:]


def _day_text(day: float) -> str:
    return _svg.day_to_date(day).isoformat()


# --- frames -------------------------------------------------------------------------------


def _has(frame: pl.DataFrame | None, *columns: str) -> bool:
    return frame is not None and all(c in frame.columns for c in columns)


def _days(series: pl.Series) -> np.ndarray:
    """Dates or datetimes as float days since 1970-01-01 (NaN for nulls)."""
    if series.dtype == pl.String:
        series = series.str.to_date(strict=False)
    if series.dtype == pl.Date:
        return series.cast(pl.Int32).cast(pl.Float64).to_numpy()
    if isinstance(series.dtype, pl.Datetime):
        return (series.dt.epoch("ms").cast(pl.Float64) / 86_400_000).to_numpy()
    return np.full(series.len(), np.nan)


def _x_kind(series: pl.Series) -> _svg.XKind:
    return "datetime" if isinstance(series.dtype, pl.Datetime) else "date"


def _floats(series: pl.Series) -> np.ndarray:
    return series.cast(pl.Float64, strict=False).to_numpy().astype(np.float64, copy=False)


def _equity_frame(equity: pl.DataFrame | None) -> pl.DataFrame | None:
    if equity is None or equity.height == 0 or not _has(equity, "date", "equity"):
        return None
    frame = equity.sort("date")
    if "drawdown" not in frame.columns or frame["drawdown"].null_count() == frame.height:
        eq = pl.col("equity").cast(pl.Float64)
        frame = frame.with_columns((eq / eq.cum_max() - 1).alias("drawdown"))
    return frame


def _traded(trades: pl.DataFrame | None) -> bool:
    return trades is not None and trades.height > 0 and _has(trades, "symbol", "entry_date")


def _is_short(direction: Any) -> bool:
    direction = _plain(direction)
    if isinstance(direction, int | float) and not isinstance(direction, bool):
        return direction < 0
    return str(direction).strip().lower() in {"short", "sell", "s", "-1"}


def _infer_objective(frame: pl.DataFrame, grid_params: Sequence[str] | None) -> str | None:
    skip = set(grid_params or ())
    for name, dtype in frame.schema.items():
        if name not in skip and dtype.is_numeric() and name not in {"stage", "rank"}:
            return name
    return None


# --- building blocks ----------------------------------------------------------------------


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[tuple[str, str]]],
    klass: str = "",
    header_classes: Sequence[str] | None = None,
) -> str:
    """Headers are plain text (escaped here); cells are (escaped html, css class)."""
    hc = header_classes or [""] * len(headers)
    head = "".join(
        f"<th{f' class={_q(c)}' if c else ''}>{esc(h)}</th>"
        for h, c in zip(headers, hc, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(f"<td{f' class={_q(c)}' if c else ''}>{v}</td>" for v, c in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{klass}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _q(value: str) -> str:
    return f'"{esc(value)}"'


def _kv_table(items: Sequence[tuple[str, str]], klass: str = "kv") -> str:
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items)
    return f'<table class="{klass}"><tbody>{rows}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _figure(svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="chart-box">{svg}{cap}</figure>'


# --- sections -----------------------------------------------------------------------------


def _summary_section(
    stats: Mapping[str, Any], trades: pl.DataFrame, benchmark: pl.DataFrame | None
) -> str:
    cards = []
    bench = _benchmark_return(benchmark)
    n_open = int(trades["is_open"].fill_null(False).sum()) if _has(trades, "is_open") else None
    for title, keys, style in CARDS:
        raw = next((stats[k] for k in keys if k in stats), None)
        if style == "count" and raw is None and trades is not None:
            raw = trades.height
        v = _finite(raw)
        sub = ""
        if style == "signed_pct":
            text, tone = _signed(v, " %"), _tone(v)
            if title == "Total return" and bench is not None:
                sub = f"buy &amp; hold {_signed(bench, ' %')}"
        elif style == "signed":
            text, tone = (DASH if v is None else f"{v:.2f}"), _tone(v)
        elif style == "drawdown":
            text, tone = (DASH if v is None else f"{v:,.2f} %"), "neg" if v and v < 0 else ""
        elif style == "count":
            text, tone = (DASH if v is None else f"{int(v):,}"), ""
            if n_open:
                sub = f"{n_open:,} still open"
        else:
            text, tone = (DASH if v is None else f"{v:,.2f} %"), ""
        cards.append(
            f'<div class="card"><div class="card-label">{esc(title)}</div>'
            f'<div class="card-value {tone}">{esc(text)}</div>'
            f'<div class="card-sub">{sub}</div></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _benchmark_return(benchmark: pl.DataFrame | None) -> float | None:
    if benchmark is None or not _has(benchmark, "equity"):
        return None
    values = _floats(
        benchmark.sort("date")["equity"] if "date" in benchmark.columns else benchmark["equity"]
    )
    values = values[np.isfinite(values)]
    if values.size < 2 or values[0] == 0:
        return None
    return float((values[-1] / values[0] - 1) * 100)


def _equity_section(curve: pl.DataFrame, benchmark: pl.DataFrame | None) -> str:
    x, y = _days(curve["date"]), _floats(curve["equity"])
    series = [_svg.Series("strategy", x, y, EQUITY_COLOR, width=1.8)]
    if _has(benchmark, "date", "equity") and benchmark is not None and benchmark.height:
        b = benchmark.sort("date")
        series.append(
            _svg.Series(
                "buy & hold",
                _days(b["date"]),
                _floats(b["equity"]),
                BENCHMARK_COLOR,
                width=1.3,
                dash="5 3",
            )
        )
    svg = _svg.line_chart(
        series, height=320, x_kind=_x_kind(curve["date"]), y_kind="money", label="equity curve"
    )
    ok = np.isfinite(x) & np.isfinite(y)
    caption = ""
    if ok.sum() >= 1:
        first, last = y[ok][0], y[ok][-1]
        change = (last / first - 1) * 100 if first else None
        caption = (
            f"{esc(_day_text(x[ok][0]))} → {esc(_day_text(x[ok][-1]))} · start {first:,.2f} → "
            f"end {last:,.2f} ({esc(_signed(change, ' %'))})"
        )
    return _figure(svg, caption)


def _drawdown_section(curve: pl.DataFrame) -> str:
    x, dd = _days(curve["date"]), _floats(curve["drawdown"]) * 100
    svg = _svg.line_chart(
        [_svg.Series("drawdown", x, dd, LOSS_COLOR, width=1.2, fill_to=0.0, fill_opacity=0.25)],
        height=180,
        x_kind=_x_kind(curve["date"]),
        y_kind="pct",
        label="drawdown",
    )
    ok = np.isfinite(x) & np.isfinite(dd)
    caption = ""
    if ok.any():
        xs, ds = x[ok], dd[ok]
        worst = int(np.argmin(ds))
        caption = f"Deepest {ds[worst]:,.2f} % on {esc(_day_text(xs[worst]))}"
        start, length, best = None, 0.0, (0.0, 0.0, 0.0)
        for day, value in zip(xs.tolist(), ds.tolist(), strict=True):
            if value < 0 and start is None:
                start = day
            elif value >= 0 and start is not None:
                start = None
            length = day - start if start is not None else 0.0
            if length > best[0]:
                best = (length, day - length, day)
        if best[0] > 0:
            caption += (
                f" · longest under water {best[0]:,.0f} days "
                f"({esc(_day_text(best[1]))} → {esc(_day_text(best[2]))})"
            )
    return _figure(svg, caption)


def _markers_section(trades: pl.DataFrame, prices: pl.DataFrame) -> str:
    counts = (
        trades.filter(pl.col("symbol").is_not_null())
        .group_by("symbol")
        .len()
        .sort(["len", "symbol"], descending=[True, False])
    )
    symbols = counts["symbol"].to_list()
    shown, omitted = symbols[:MAX_SYMBOL_CHARTS], symbols[MAX_SYMBOL_CHARTS:]
    close = prices.filter(pl.col("symbol").is_in(shown)).select("symbol", "date", "close")
    charts = []
    for symbol in shown:
        mine = trades.filter(pl.col("symbol") == symbol)
        bars = close.filter(pl.col("symbol") == symbol).sort("date")
        recent = mine.sort("entry_date", descending=True, nulls_last=True).head(
            MAX_TRADES_PER_CHART
        )
        markers, segments = _trade_marks(recent)
        series = [
            _svg.Series(
                str(symbol), _days(bars["date"]), _floats(bars["close"]), PRICE_COLOR, width=1.2
            )
        ]
        svg = _svg.line_chart(
            series,
            width=560,
            height=230,
            x_kind=_x_kind(bars["date"]),
            y_kind="num",
            markers=markers,
            segments=segments,
            legend=False,
            max_points=1_000,
            label=f"{symbol} price with trades",
        )
        shorts = (
            sum(_is_short(d) for d in mine["direction"].to_list()) if _has(mine, "direction") else 0
        )
        pnl = _finite(mine["pnl"].sum()) if _has(mine, "pnl") else None
        cut = (
            f" · the {MAX_TRADES_PER_CHART} most recent drawn"
            if mine.height > MAX_TRADES_PER_CHART
            else ""
        )
        head = (
            f'<div class="chart-head"><b>{esc(symbol)}</b> <span class="muted">'
            f"{mine.height:,} trade{'s' if mine.height != 1 else ''} · "
            f"{mine.height - shorts:,} long / {shorts:,} short · P&amp;L "
            f'<span class="{_tone(pnl)}">{esc(_signed(pnl))}</span>{cut}</span></div>'
        )
        charts.append(f'<figure class="chart-box small">{head}{svg}</figure>')
    legend = (
        f'<p class="legend"><span style="color:{LONG_COLOR}">▲</span> long entry · '
        f'<span style="color:{SHORT_COLOR}">▲</span> short entry · '
        "▽ exit (hollow, in the colour of its side) · dotted line from entry to exit: "
        '<span class="pos">winner</span> / <span class="neg">loser</span>. '
        "Hover a triangle for the details.</p>"
    )
    note = ""
    if omitted:
        names = ", ".join(esc(s) for s in omitted[:20]) + (", …" if len(omitted) > 20 else "")
        note = _note(
            f"Showing the {len(shown)} symbols with the most trades; {len(omitted):,} more "
            f"traded symbol{'s' if len(omitted) != 1 else ''} omitted: {names}."
        )
    return legend + f'<div class="grid2">{"".join(charts)}</div>' + note


def _trade_marks(trades: pl.DataFrame) -> tuple[list[_svg.Marker], list[_svg.Segment]]:
    def col(name: str) -> list[Any]:
        return trades[name].to_list() if name in trades.columns else [None] * trades.height

    markers, segments = [], []
    entry_day = _days(trades["entry_date"])
    exit_day = (
        _days(trades["exit_date"])
        if "exit_date" in trades.columns
        else np.full(trades.height, np.nan)
    )
    rows = zip(
        col("direction"),
        col("entry_price"),
        col("exit_price"),
        col("pnl"),
        col("return_pct"),
        col("exit_reason"),
        col("shares"),
        strict=True,
    )
    for i, (direction, entry_price, exit_price, pnl, ret, reason, shares) in enumerate(rows):
        short = _is_short(direction)
        color = SHORT_COLOR if short else LONG_COLOR
        side = "short" if short else "long"
        ep, xp = _finite(entry_price), _finite(exit_price)
        if ep is not None and math.isfinite(entry_day[i]):
            markers.append(
                _svg.Marker(
                    float(entry_day[i]),
                    ep,
                    True,
                    color,
                    True,
                    f"{side} entry {_day_text(entry_day[i])} @ {_price(ep)}"
                    + (f" · {fmt_value('shares', shares)} shares" if shares is not None else ""),
                )
            )
        if xp is not None and math.isfinite(exit_day[i]):
            result = f" · P&L {_signed(_finite(pnl))} ({_signed(_finite(ret), ' %')})"
            why = f" · {reason}" if reason else ""
            markers.append(
                _svg.Marker(
                    float(exit_day[i]),
                    xp,
                    False,
                    color,
                    False,
                    f"{side} exit {_day_text(exit_day[i])} @ {_price(xp)}{result}{why}",
                )
            )
            if ep is not None and math.isfinite(entry_day[i]):
                won = (_finite(pnl) or 0) > 0
                segments.append(
                    _svg.Segment(
                        float(entry_day[i]),
                        ep,
                        float(exit_day[i]),
                        xp,
                        WIN_COLOR if won else LOSS_COLOR,
                    )
                )
    return markers, segments


def _stats_section(stats: Mapping[str, Any]) -> str:
    if not stats:
        return _note("No statistics.")
    items = [
        (f'<span title="{esc(k)}">{esc(label(k))}</span>', _stat_cell(k, v))
        for k, v in stats.items()
    ]
    half = math.ceil(len(items) / 2)
    return (
        f'<div class="grid2 stats">{_kv_table(items[:half])}'
        f"{_kv_table(items[half:]) if items[half:] else ''}</div>"
    )


def _stat_cell(key: str, value: Any) -> str:
    text = esc(fmt_value(key, value))
    v = _finite(value)
    if v is not None and any(w in key for w in ("return", "pnl", "cagr", "profit")) and v:
        return f'<span class="{_tone(v)}">{text}</span>'
    return text


def _trades_section(trades: pl.DataFrame) -> str:
    if trades is None or trades.height == 0:
        return _note("No trades.")
    total = trades.height
    frame = (
        trades.sort("entry_date", descending=True, nulls_last=True)
        if "entry_date" in trades.columns
        else trades.reverse()
    )
    frame = frame.head(MAX_TRADE_ROWS)
    columns = [c for c in TRADE_COLUMNS if c in frame.columns]
    columns += [c for c in frame.columns if c not in columns and c != "is_open"]
    opened = frame["is_open"].to_list() if "is_open" in frame.columns else [None] * frame.height
    rows = []
    for record, is_open in zip(frame.select(columns).iter_rows(named=True), opened, strict=True):
        rows.append([_trade_cell(name, record[name], bool(is_open)) for name in columns])
    header_classes = ["num" if frame.schema[c].is_numeric() else "" for c in columns]
    summary = _trade_summary(trades)
    cut = (
        _note(f"Showing the {MAX_TRADE_ROWS} most recent of {total:,} trades (by entry date).")
        if total > MAX_TRADE_ROWS
        else ""
    )
    table = _table(
        [label(c) if c != "pnl" else "P&L" for c in columns], rows, "data", header_classes
    )
    return f'{summary}{cut}<div class="scroll">{table}</div>'


def _trade_cell(name: str, value: Any, is_open: bool) -> tuple[str, str]:
    value = _plain(value)
    if name == "symbol":
        return f"<b>{esc(DASH if value is None else value)}</b>", ""
    if name == "direction":
        short = _is_short(value)
        text = (
            DASH
            if value is None
            else ("short" if short else "long")
            if not isinstance(value, str)
            else value
        )
        return f'<span class="badge {"short" if short else "long"}">{esc(text)}</span>', ""
    if name == "exit_date" and value is None and is_open:
        return '<span class="badge open">open</span>', ""
    if name in {"entry_price", "exit_price"}:
        return esc(_price(value)), "num"
    if name in {"pnl", "return_pct"}:
        v = _finite(value)
        text = _signed(v, " %" if name == "return_pct" else "")
        return f'<span class="{_tone(v)}">{esc(text)}</span>', "num"
    if name == "shares":
        v = _finite(value)
        text = DASH if v is None else (f"{v:,.0f}" if v.is_integer() else f"{v:,.4g}")
        return esc(text), "num"
    if name == "fees":
        v = _finite(value)
        return esc(DASH if v is None else f"{v:,.2f}"), "num"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return esc(fmt_value(name, value)), "num" if numeric else ""


def _trade_summary(trades: pl.DataFrame) -> str:
    parts = [f"{trades.height:,} trades"]
    closed = trades
    if "is_open" in trades.columns:
        n_open = int(trades["is_open"].fill_null(False).sum())
        closed = trades.filter(~pl.col("is_open").fill_null(False))
        parts[0] += f" ({closed.height:,} closed, {n_open:,} open)"
    if "pnl" in closed.columns and closed.height:
        pnl = _floats(closed["pnl"])
        pnl = pnl[np.isfinite(pnl)]
        if pnl.size:
            wins = int((pnl > 0).sum())
            parts.append(f"{wins:,} winners ({wins / pnl.size * 100:.1f} %)")
            parts.append(f'best <span class="pos">{esc(_signed(float(pnl.max())))}</span>')
            parts.append(f'worst <span class="neg">{esc(_signed(float(pnl.min())))}</span>')
            total = float(pnl.sum())
            parts.append(f'total P&amp;L <span class="{_tone(total)}">{esc(_signed(total))}</span>')
    return f'<p class="lead">{" · ".join(parts)}</p>'


def _optimization_section(
    table: pl.DataFrame, grid_params: Sequence[str] | None, objective: str | None
) -> str:
    top = table.head(MAX_OPTIMIZATION_ROWS)
    params = [p for p in (grid_params or ()) if p in table.columns]
    columns = params + [c for c in table.columns if c not in params]
    numeric = {c: top.schema[c].is_numeric() for c in columns}

    def klass(c: str) -> str:
        role = "param" if c in params else "obj" if c == objective else ""
        return f"{'num ' if numeric[c] else ''}{role}".strip()

    rows = []
    for i, record in enumerate(top.select(columns).iter_rows(named=True)):
        cells = [(esc(str(i + 1)), "num")]
        for c in columns:
            text = _setting(c, record[c]) if c in params else fmt_value(c, record[c])
            cells.append((esc(text), klass(c)))
        rows.append(cells)
    headers = ["#", *(c if c in params else label(c) for c in columns)]
    note = (
        f"Top {top.height} of {table.height:,} parameter combinations"
        + (f", ranked by <b>{esc(objective)}</b>" if objective else "")
        + "; parameter columns in blue."
    )
    table_html = _table(headers, rows, "data", ["num", *(klass(c) for c in columns)])
    out = _note(note) + f'<div class="hscroll">{table_html}</div>'
    if len(grid_params or ()) == 2 and len(params) == 2 and objective in table.columns:
        out += _heatmap(table, params[0], params[1], objective)
    return out


def _sorted_values(series: pl.Series) -> list[Any]:
    values = [v for v in series.unique().to_list() if v is not None]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _axis_text(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _heatmap(table: pl.DataFrame, px: str, py: str, objective: str) -> str:
    xs, ys = _sorted_values(table[px]), _sorted_values(table[py])
    if not xs or not ys:
        return ""
    if len(xs) * len(ys) > MAX_HEATMAP_CELLS:
        return _note(f"Heatmap left out: {len(xs)} × {len(ys)} cells is too many to draw.")
    x_at = {v: i for i, v in enumerate(xs)}
    y_at = {v: i for i, v in enumerate(ys)}
    grid = np.full((len(ys), len(xs)), np.nan)
    values = _floats(table[objective])
    for a, b, v in zip(table[px].to_list(), table[py].to_list(), values.tolist(), strict=True):
        if a is None or b is None or not math.isfinite(v):
            continue
        row, col = y_at[b], x_at[a]
        if math.isnan(grid[row, col]) or v > grid[row, col]:  # larger is better, keep the best
            grid[row, col] = v
    best = None
    if np.isfinite(grid).any():
        flat = int(np.nanargmax(grid))
        best = (flat // len(xs), flat % len(xs))
    fmt: Callable[[float], str] = (
        (lambda v: f"{v:.2f}") if not _is_pct(objective) else (lambda v: f"{v:.1f}%")
    )
    svg = _svg.heatmap(
        [_axis_text(v) for v in xs],
        [_axis_text(v) for v in ys],
        grid,
        x_title=px,
        y_title=py,
        value_title=objective,
        fmt=fmt,
        best=best,
    )
    caption = (
        f"{esc(objective)} for each ({esc(px)}, {esc(py)}); the best cell is outlined, "
        "grey cells were not evaluated or were skipped."
    )
    return f"<h3>Heatmap</h3>{_figure(svg, caption)}"


def _walkforward_section(folds: pl.DataFrame, objective: str | None) -> str:
    columns = folds.columns
    rows = []
    for record in folds.iter_rows(named=True):
        cells = []
        for c in columns:
            v = _plain(record[c])
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            text = esc(fmt_value(c, v))
            if c in {"in_sample", "out_of_sample"} and numeric:
                text = f'<span class="{_tone(_finite(v))}">{text}</span>'
            cells.append((text, "num" if numeric else ""))
        rows.append(cells)
    headers = [
        f"{label(c)} ({objective})"
        if c in {"in_sample", "out_of_sample"} and objective
        else label(c)
        for c in columns
    ]
    out = f'<div class="hscroll">{_table(headers, rows, "data")}</div>'
    means = {}
    for c in ("in_sample", "out_of_sample"):
        if c in columns:
            vals = _floats(folds[c])
            vals = vals[np.isfinite(vals)]
            means[c] = float(vals.mean()) if vals.size else None
    if means:
        ins, oos = means.get("in_sample"), means.get("out_of_sample")
        ratio = oos / ins if ins not in (None, 0) and oos is not None else None
        out = (
            _note(
                f"{folds.height} folds · mean in-sample {esc(fmt_value('', ins))} · mean "
                f"out-of-sample {esc(fmt_value('', oos))} · out/in {esc(fmt_value('', ratio))} "
                "(1 = no degradation)"
            )
            + out
        )
    return out


def _montecarlo_section(mc: Mapping[str, Any]) -> str:
    out = []
    ruin, level = _finite(mc.get("prob_ruin")), _finite(mc.get("ruin_level"))
    method = mc.get("method")
    facts = [
        ("Paths", fmt_value("paths", mc.get("paths"))),
        (
            "Method",
            {"trades": "resampled trades", "daily": "block-bootstrapped days"}.get(
                str(method), fmt_value("method", method)
            ),
        ),
        ("Probability of ruin", DASH if ruin is None else f"{ruin * 100:.2f} %"),
    ]
    sub = f"equity at or below {(1 - level) * 100:.0f} % of start" if level is not None else ""
    cards = "".join(
        f'<div class="card"><div class="card-label">{esc(k)}</div>'
        f'<div class="card-value{" neg" if k.startswith("Prob") and ruin else ""}">{esc(v)}'
        f'</div><div class="card-sub">{esc(sub) if k.startswith("Prob") else ""}</div></div>'
        for k, v in facts
    )
    out.append(f'<div class="cards">{cards}</div>')
    fan = mc.get("fan")
    if isinstance(fan, pl.DataFrame) and fan.height and _has(fan, "p50"):
        out.append(_fan_chart(fan, method, level))
    rows = []
    columns: list[str] = []
    for value in mc.values():
        if isinstance(value, Mapping):
            columns += [k for k in value if k not in columns]
    for key, value in mc.items():
        if isinstance(value, Mapping) and value:
            rows.append(
                [(esc(label(key)), "")]
                + [(esc(fmt_value(key, value.get(c))), "num") for c in columns]
            )
    if rows:
        out.append(_table(["", *columns], rows, "data pct", ["", *(["num"] * len(columns))]))
    rest = [
        (esc(label(k)), esc(fmt_value(k, v)))
        for k, v in mc.items()
        if k not in {"fan", "paths", "method", "prob_ruin"}
        and not isinstance(v, Mapping | pl.DataFrame)
    ]
    if rest:
        out.append(_kv_table(rest, "kv inline"))
    return "".join(out)


def _fan_chart(fan: pl.DataFrame, method: Any, ruin_level: float | None) -> str:
    step = _floats(fan["step"]) if "step" in fan.columns else np.arange(fan.height, dtype=float)

    def col(name: str) -> np.ndarray | None:
        return _floats(fan[name]) if name in fan.columns else None

    bands = []
    for lo, hi, opacity in (("p5", "p95", 0.14), ("p25", "p75", 0.28)):
        a, b = col(lo), col(hi)
        if a is not None and b is not None:
            bands.append(_svg.Band(f"{lo}–{hi}", step, a, b, EQUITY_COLOR, opacity))
    median = col("p50")
    assert median is not None
    series = [_svg.Series("median (p50)", step, median, EQUITY_COLOR, width=1.8)]
    hlines = []
    start = median[np.isfinite(median)][0] if np.isfinite(median).any() else None
    if start is not None:
        hlines.append(_svg.HLine(float(start), f"start {start:,.0f}"))
        if ruin_level is not None:
            hlines.append(_svg.HLine(float(start * (1 - ruin_level)), "ruin", LOSS_COLOR))
    x_label = "trade #" if method == "trades" else "trading day"
    svg = _svg.line_chart(
        series,
        height=320,
        x_kind="num",
        y_kind="money",
        bands=bands,
        hlines=hlines,
        x_label=x_label,
        label="Monte Carlo equity fan",
    )
    return _figure(svg, "Equity paths: the median, the middle 50 % and the middle 90 % of paths.")


# --- document -----------------------------------------------------------------------------


def _document(
    title: str,
    generated: dt.datetime,
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    sections: Sequence[tuple[str, str, str]],
) -> str:
    when = generated.strftime("%Y-%m-%d %H:%M:%S") + (
        f" {generated.tzname()}" if generated.tzinfo else ""
    )
    chips = "".join(
        f'<span class="chip"><b>{esc(k)}</b> = {esc(_setting(str(k), v))}</span>'
        for k, v in params.items()
    )
    meta = []
    if chips:
        meta.append(f'<div><div class="meta-label">Parameters</div>{chips}</div>')
    if config:
        items = [(esc(k), esc(_setting(str(k), v))) for k, v in config.items()]
        meta.append(
            f'<div><div class="meta-label">Settings</div>{_kv_table(items, "kv cfg")}</div>'
        )
    nav = "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{esc(name)}</h2>{content}</section>'
        for sid, name, content in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="BreadthFlow"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="muted">Backtest report · generated '
        f'{esc(when)}</p><div class="meta">{"".join(meta)}</div></header>'
        f"<nav>{nav}</nav><main>{body}</main>"
        "<footer>BreadthFlow backtest report · one self-contained file, works offline · "
        "past performance is no guarantee of future results</footer>"
        f'<div id="bf-tip" class="tip" hidden></div><script>{_JS}</script></body></html>'
    )


_CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f5f6f8;--card:#fff;
--pos:#1a7f37;--neg:#cf222e;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
header,main,footer{max-width:1120px;margin:0 auto;padding:0 20px}
header{padding-top:24px}
h1{font-size:22px;margin:0 0 4px;word-break:break-word}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:15px;margin:18px 0 8px}
.muted{color:var(--muted)}
.meta{display:flex;flex-wrap:wrap;gap:24px;margin:12px 0 4px}
.meta-label{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
margin-bottom:4px}
.chip{display:inline-block;background:#eef2ff;border:1px solid #dbe2fe;border-radius:999px;
padding:2px 10px;margin:0 6px 6px 0;font-size:13px}
nav{position:sticky;top:0;z-index:5;background:rgba(245,246,248,.94);
border-bottom:1px solid var(--line);padding:8px 20px;text-align:center;
backdrop-filter:blur(4px)}
nav a{color:var(--accent);text-decoration:none;margin:0 9px;font-size:13px;white-space:nowrap}
nav a:hover{text-decoration:underline}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 18px;margin:16px 0;scroll-margin-top:48px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;
margin-bottom:8px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px;background:#fcfcfd}
.card-label{font-size:12px;color:var(--muted)}
.card-value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}
.card-sub{font-size:12px;color:var(--muted);min-height:1em}
.pos{color:var(--pos)}.neg{color:var(--neg)}
figure{margin:0}
.chart-box svg{width:100%;height:auto;display:block}
figcaption,.note{color:var(--muted);font-size:12.5px;margin:6px 0}
.lead{margin:0 0 8px}
.legend{margin:0 0 10px;font-size:13px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px 20px}
.chart-head{font-size:13px;margin-bottom:2px}
.chart-box.small{border:1px solid var(--line);border-radius:8px;padding:8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{position:sticky;top:0;background:#f9fafb;font-weight:600;font-size:12.5px;
white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
table.data tbody tr:nth-child(even){background:#fafbfc}
table.data tbody tr:hover{background:#eef2ff}
table.kv th{font-weight:500;color:#374151;width:55%}
table.kv td{text-align:right;white-space:nowrap}
table.cfg{width:auto}table.cfg th{width:auto;padding-right:24px}
table.inline{width:auto;margin-top:10px}
th.obj,td.obj{background:#eef2ff;font-weight:600}
th.param{color:var(--accent)}
.scroll{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.scroll table{border:0}
.hscroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;font-weight:600}
.badge.long{background:#dbeafe;color:#1e40af}.badge.short{background:#fef3c7;color:#92400e}
.badge.open{background:#e5e7eb;color:#374151}
footer{color:var(--muted);font-size:12px;padding:8px 20px 32px;text-align:center}
.tip{position:fixed;z-index:10;pointer-events:none;background:rgba(17,24,39,.92);color:#fff;
padding:6px 9px;border-radius:6px;font-size:12px;line-height:1.5;white-space:nowrap}
.tip i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px}
@media print{nav,.tip{display:none}.scroll{max-height:none;overflow:visible}
section{break-inside:avoid}}
"""

# Hover read-out for line charts: the nearest drawn point of each line, read back from the
# chart's scales (data-* attributes). Builds the tooltip with textContent only.
_JS = """
(function () {
  var tip = document.getElementById("bf-tip");
  function xText(v, kind) {
    if (kind === "num") return Math.round(v).toLocaleString();
    if (kind === "date") return new Date(Math.round(v) * 864e5).toISOString().slice(0, 10);
    return new Date(Math.round(v * 1440) * 6e4).toISOString().slice(0, 16).replace("T", " ");
  }
  function yText(v, kind) {
    var t = v.toLocaleString(undefined, {minimumFractionDigits: 2, maximumFractionDigits: 2});
    return kind === "pct" ? t + " %" : t;
  }
  document.querySelectorAll("svg.bf-line").forEach(function (svg) {
    var d = svg.dataset, x0 = +d.x0, x1 = +d.x1, px0 = +d.px0, px1 = +d.px1;
    var y0 = +d.y0, y1 = +d.y1, py0 = +d.py0, py1 = +d.py1;
    var guide = svg.querySelector(".guide");
    var lines = Array.prototype.map.call(svg.querySelectorAll("polyline[data-name]"),
      function (p) {
        var pts = p.getAttribute("points").split(" ").map(function (s) {
          return s.split(",").map(Number);
        });
        return {name: p.getAttribute("data-name"), color: p.getAttribute("stroke"), pts: pts};
      });
    if (!lines.length || !guide) return;
    function hide() { tip.hidden = true; guide.setAttribute("visibility", "hidden"); }
    function nearest(pts, x) {
      var lo = 0, hi = pts.length - 1;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (pts[mid][0] < x) lo = mid + 1; else hi = mid;
      }
      if (lo > 0 && x - pts[lo - 1][0] < pts[lo][0] - x) lo -= 1;
      return pts[lo];
    }
    svg.addEventListener("mousemove", function (ev) {
      var m = svg.getScreenCTM();
      if (!m) return;
      var p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
      if (p.x < px0 || p.x > px1 || p.y < py1 || p.y > py0) { hide(); return; }
      var at = nearest(lines[0].pts, p.x)[0];
      tip.textContent = "";
      var head = document.createElement("b");
      head.textContent = xText(x0 + (at - px0) / (px1 - px0) * (x1 - x0), d.xk);
      tip.appendChild(head);
      lines.forEach(function (l) {
        var pt = nearest(l.pts, at);
        var row = document.createElement("div"), sw = document.createElement("i");
        sw.style.background = l.color;
        row.appendChild(sw);
        row.appendChild(document.createTextNode(
          l.name + ": " + yText(y0 + (py0 - pt[1]) / (py0 - py1) * (y1 - y0), d.yk)));
        tip.appendChild(row);
      });
      guide.setAttribute("x1", at); guide.setAttribute("x2", at);
      guide.setAttribute("visibility", "visible");
      tip.hidden = false;
      var left = ev.clientX + 14;
      if (left + 220 > window.innerWidth) left = ev.clientX - 14 - tip.offsetWidth;
      tip.style.left = left + "px"; tip.style.top = (ev.clientY + 14) + "px";
    });
    svg.addEventListener("mouseleave", hide);
  });
})();
"""
