"""Small inline-SVG chart helpers for the HTML backtest report.

No plotting library and nothing fetched at view time: every chart is a self-contained
``<svg>`` string, well-formed XML, sized by its ``viewBox`` and scaled by CSS. It carries no
namespace declaration: inline in HTML it needs none, and the report then holds no URL at
all. All text that reaches the markup goes through :func:`esc`.

- :func:`line_chart` — lines (optionally filled to a baseline), shaded bands, horizontal
  reference lines and triangle markers over a date or numeric x axis, with ticks and labels.
- :func:`heatmap` — a grid of coloured cells with the value in each and a colour scale.
- :func:`downsample` / :func:`envelope` — keep long series to a bounded number of points
  without hiding their extremes.

Line charts carry their scales as ``data-*`` attributes so the report's few lines of
script can turn a mouse position back into a date and values.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

XKind = Literal["date", "datetime", "num"]
YKind = Literal["money", "pct", "num"]

MAX_POINTS = 1_500
EPOCH = dt.date(1970, 1, 1)
FONT = 11
GRID = "#e5e7eb"
AXIS = "#9ca3af"
INK = "#4b5563"


def esc(value: object) -> str:
    """Text or attribute content, escaped for HTML and XML alike."""
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Series:
    """One line. ``fill_to`` shades the area between the line and that y value."""

    name: str
    x: np.ndarray
    y: np.ndarray
    color: str
    width: float = 1.6
    dash: str | None = None
    fill_to: float | None = None
    fill_opacity: float = 0.18


@dataclass(frozen=True)
class Band:
    """A shaded region between two curves sharing ``x`` (a percentile band)."""

    name: str
    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    color: str
    opacity: float = 0.2


@dataclass(frozen=True)
class HLine:
    y: float
    label: str
    color: str = AXIS
    dash: str = "4 3"


@dataclass(frozen=True)
class Marker:
    """A triangle: ``up`` (▲) or ``down`` (▼), filled or hollow, with a hover title."""

    x: float
    y: float
    up: bool
    color: str
    filled: bool
    title: str


@dataclass(frozen=True)
class Segment:
    """A thin straight line between two points (a trade from entry to exit)."""

    x0: float
    y0: float
    x1: float
    y1: float
    color: str


# --- downsampling -------------------------------------------------------------------------


def _finite(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(x, dtype=np.float64)
    arrays = [np.asarray(y, dtype=np.float64) for y in ys]
    keep = np.isfinite(x)
    for y in arrays:
        keep &= np.isfinite(y)
    return (x[keep], *(y[keep] for y in arrays))


def _buckets(n: int, count: int) -> np.ndarray:
    return np.linspace(0, n, count + 1).astype(np.int64)


def downsample(
    x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a series, keeping each bucket's lowest and highest
    value (so a one-day crash or spike survives) plus the first and last point.

    Non-finite points are dropped first. ``x`` must be sorted.
    """
    x, y = _finite(x, y)
    n = x.size
    if n <= max_points:
        return x, y
    edges = _buckets(n, max(1, (max_points - 2) // 2))
    keep = [0, n - 1]
    for start, stop in itertools.pairwise(edges):
        if stop > start:
            chunk = y[start:stop]
            keep.append(start + int(np.argmin(chunk)))
            keep.append(start + int(np.argmax(chunk)))
    index = np.unique(np.asarray(keep, dtype=np.int64))
    return x[index], y[index]


def envelope(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_points: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A band reduced to at most ``max_points`` steps: per bucket, the lowest ``lo`` and the
    highest ``hi`` (the band only ever widens, never hides a tail)."""
    x, lo, hi = _finite(x, lo, hi)
    n = x.size
    if n <= max_points:
        return x, lo, hi
    starts = _buckets(n, max_points - 1)[:-1]
    xs = np.append(x[starts], x[-1])
    los = np.append(np.minimum.reduceat(lo, starts), lo[-1])
    his = np.append(np.maximum.reduceat(hi, starts), hi[-1])
    return xs, los, his


# --- scales and ticks ---------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], float]:
    """Round tick values covering ``[lo, hi]`` (extended to whole steps) and the step."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [float(f"{i * step:.12g}") for i in range(first, last + 1)]
    return ticks, step


def _decimals(step: float) -> int:
    if step <= 0 or not math.isfinite(step):
        return 2
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(step / 10**-decimals - round(step / 10**-decimals)) > 1e-6:
        decimals += 1  # 2.5, 0.25 …
    return min(decimals, 8)


def tick_label(value: float, step: float, kind: YKind, largest: float) -> str:
    """``12k``/``1.5M`` for money and plain numbers, ``-12.5%`` for percentages."""
    if kind == "pct":
        return f"{value:.{_decimals(step)}f}%"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if largest >= scale:
            unit = scale if suffix != "k" else 1e3
            return f"{value / unit:,.{_decimals(step / unit)}f}{suffix}"
    return f"{value:,.{_decimals(step)}f}"


def day_to_date(day: float) -> dt.date:
    return EPOCH + dt.timedelta(days=math.floor(day))


def _add_months(date: dt.date, months: int) -> dt.date:
    total = date.year * 12 + date.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


def date_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[tuple[float, str]]:
    """Calendar-aligned ticks for an axis in days since 1970-01-01: years, months, days
    or hours, whichever gives at most ``max_ticks`` labels."""
    span = hi - lo
    max_ticks = max(2, max_ticks)
    if span <= 0 or not math.isfinite(span):
        return [(lo, day_to_date(lo).isoformat())] if math.isfinite(lo) else []
    start, end = day_to_date(lo), day_to_date(hi)

    def in_range(day: float) -> bool:
        return lo - 1e-9 <= day <= hi + 1e-9

    if span / 365.25 >= 3:
        years = span / 365.25
        step = next(
            s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if years / s <= max_ticks
        )
        first = -(-start.year // step) * step
        out = []
        for year in range(first, end.year + 1, step):
            day = float((dt.date(year, 1, 1) - EPOCH).days) if 1 <= year <= 9999 else None
            if day is not None and in_range(day):
                out.append((day, str(year)))
        return out
    if span >= 60:
        months = span / 30.44
        step = next((s for s in (1, 2, 3, 6, 12) if months / s <= max_ticks), 12)
        date = dt.date(start.year, start.month, 1)
        out = []
        while date <= end:
            day = float((date - EPOCH).days)
            if (date.month - 1) % step == 0 and in_range(day):
                out.append((day, f"{calendar.month_abbr[date.month]} {date.year}"))
            date = _add_months(date, 1)
        return out
    if span >= 2:
        step = next((s for s in (1, 2, 7, 14) if span / s <= max_ticks), 28)
        offset = 4 if step in (7, 14) else 0  # day 4 after the epoch is a Monday
        first = math.ceil((lo - offset) / step) * step + offset
        return [
            (float(d), f"{calendar.month_abbr[day_to_date(d).month]} {day_to_date(d).day:02d}")
            for d in range(first, math.floor(hi) + 1, step)
        ]
    hours = span * 24
    step = next((s for s in (1, 2, 3, 6, 12) if hours / s <= max_ticks), 24)
    first_hour = math.ceil(lo * 24 / step) * step
    out = []
    for hour in range(first_hour, math.floor(hi * 24) + 1, step):
        out.append((hour / 24, f"{hour % 24:02d}:00"))
    return out


# --- line chart ---------------------------------------------------------------------------


def _points(px: np.ndarray, py: np.ndarray) -> str:
    return " ".join(f"{a:.2f},{b:.2f}" for a, b in zip(px.tolist(), py.tolist(), strict=True))


def _empty(width: int, height: int, text: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{esc(text)}"><rect x="0.5" y="0.5" width="{width - 1}" '
        f'height="{height - 1}" fill="#fafafa" stroke="{GRID}"/><text x="{width / 2}" '
        f'y="{height / 2}" text-anchor="middle" fill="{INK}" font-size="{FONT + 1}">'
        f"{esc(text)}</text></svg>"
    )


def line_chart(
    series: Sequence[Series],
    *,
    width: int = 1000,
    height: int = 300,
    x_kind: XKind = "date",
    y_kind: YKind = "num",
    bands: Sequence[Band] = (),
    hlines: Sequence[HLine] = (),
    markers: Sequence[Marker] = (),
    segments: Sequence[Segment] = (),
    x_label: str | None = None,
    label: str = "chart",
    legend: bool = True,
    max_points: int = MAX_POINTS,
) -> str:
    """An SVG line chart. Every series and band is downsampled to ``max_points``; x is in
    days since 1970-01-01 for ``x_kind="date"`` (whole days) and ``"datetime"`` (fractions
    of a day: intraday bars). Non-finite points are skipped."""
    lines = [(s, *downsample(s.x, s.y, max_points)) for s in series]
    areas = [(b, *envelope(b.x, b.lo, b.hi, max_points)) for b in bands]
    marks = [m for m in markers if math.isfinite(m.x) and math.isfinite(m.y)]
    xs = [a for _, a, _ in lines] + [a for _, a, _, _ in areas] + [np.array([m.x for m in marks])]
    ys = (
        [b for _, _, b in lines]
        + [np.concatenate([lo, hi]) for _, _, lo, hi in areas]
        + [np.array([m.y for m in marks])]
    )
    all_x = np.concatenate([a for a in xs if a.size]) if any(a.size for a in xs) else np.array([])
    all_y = np.concatenate([a for a in ys if a.size]) if any(a.size for a in ys) else np.array([])
    if all_x.size == 0:
        return _empty(width, height, f"{label}: no data")
    extra_y = [h.y for h in hlines if math.isfinite(h.y)]
    extra_y += [s.fill_to for s in series if s.fill_to is not None and math.isfinite(s.fill_to)]
    y_lo = float(min(all_y.min(), *extra_y)) if extra_y else float(all_y.min())
    y_hi = float(max(all_y.max(), *extra_y)) if extra_y else float(all_y.max())
    x0, x1 = float(all_x.min()), float(all_x.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    show_legend = legend and (len(series) + len(bands)) > 1
    top = 24 if show_legend else 10
    left, right, bottom = 62, 18, 24 + (14 if x_label else 0)
    plot_w, plot_h = width - left - right, height - top - bottom
    y_ticks, y_step = nice_ticks(y_lo, y_hi, max(3, plot_h // 32))
    y0, y1 = y_ticks[0], y_ticks[-1]
    largest = max(abs(y0), abs(y1))

    def sx(v: np.ndarray | float) -> np.ndarray | float:
        return left + (np.asarray(v, dtype=np.float64) - x0) / (x1 - x0) * plot_w

    def sy(v: np.ndarray | float) -> np.ndarray | float:
        return top + (y1 - np.asarray(v, dtype=np.float64)) / (y1 - y0) * plot_h

    out = [
        f'<svg class="chart bf-line" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}" '
        f'data-x0="{x0!r}" data-x1="{x1!r}" data-px0="{left}" data-px1="{left + plot_w}" '
        f'data-y0="{y0!r}" data-y1="{y1!r}" data-py0="{top + plot_h}" data-py1="{top}" '
        f'data-xk="{x_kind}" data-yk="{y_kind}" font-size="{FONT}" fill="{INK}">'
    ]
    # y grid and labels
    for tick in y_ticks:
        py = float(sy(tick))
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{py + 3.5:.1f}" text-anchor="end">'
            f"{esc(tick_label(tick, y_step, y_kind, largest))}</text>"
        )
    # x ticks
    max_x_ticks = max(2, plot_w // 95)
    if x_kind != "num":
        x_ticks = date_ticks(x0, x1, max_x_ticks)
    else:
        values, step = nice_ticks(x0, x1, max_x_ticks)
        x_ticks = [(v, f"{v:,.{_decimals(step)}f}") for v in values if x0 <= v <= x1]
    for value, text in x_ticks:
        px = float(sx(value))
        # a label near an edge is anchored inwards so it is not cut off
        half = 3.3 * len(text)
        anchor = "end" if px + half > width - 2 else "start" if px - half < 2 else "middle"
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + plot_h}" stroke="{GRID}"/>'
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="{AXIS}"/><text x="{px:.1f}" y="{top + plot_h + 16}" '
            f'text-anchor="{anchor}">{esc(text)}</text>'
        )
    out.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{AXIS}"/>'
    )
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
            f"{esc(x_label)}</text>"
        )
    for band, bx, lo, hi in areas:
        if bx.size:
            px = sx(bx)
            upper = _points(px, sy(hi))
            lower = _points(px[::-1], sy(lo)[::-1])
            out.append(
                f'<polygon points="{upper} {lower}" fill="{band.color}" '
                f'fill-opacity="{band.opacity}" stroke="none"><title>{esc(band.name)}</title>'
                "</polygon>"
            )
    for line in hlines:
        if math.isfinite(line.y):
            py = float(sy(line.y))
            out.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{py:.1f}" y2="{py:.1f}" '
                f'stroke="{line.color}" stroke-dasharray="{line.dash}"/>'
                f'<text x="{left + plot_w - 4}" y="{py - 4:.1f}" text-anchor="end" '
                f'fill="{line.color}">{esc(line.label)}</text>'
            )
    for s, lx, ly in lines:
        if lx.size == 0:
            continue
        px, py = sx(lx), sy(ly)
        if s.fill_to is not None and math.isfinite(s.fill_to):
            base = float(sy(s.fill_to))
            out.append(
                f'<polygon points="{px[0]:.2f},{base:.2f} {_points(px, py)} '
                f'{px[-1]:.2f},{base:.2f}" fill="{s.color}" fill-opacity="{s.fill_opacity}" '
                'stroke="none"/>'
            )
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(
            f'<polyline data-name="{esc(s.name)}" points="{_points(px, py)}" fill="none" '
            f'stroke="{s.color}" stroke-width="{s.width}" stroke-linejoin="round"{dash}/>'
        )
    for seg in segments:
        coords = (seg.x0, seg.y0, seg.x1, seg.y1)
        if all(math.isfinite(c) for c in coords):
            out.append(
                f'<line x1="{float(sx(seg.x0)):.1f}" y1="{float(sy(seg.y0)):.1f}" '
                f'x2="{float(sx(seg.x1)):.1f}" y2="{float(sy(seg.y1)):.1f}" '
                f'stroke="{seg.color}" stroke-width="1" stroke-dasharray="2 2" opacity="0.8"/>'
            )
    for m in marks:
        px, py = float(sx(m.x)), float(sy(m.y))
        shape = (
            f"M{px:.1f},{py - 5:.1f}l4.5,8h-9z" if m.up else f"M{px:.1f},{py + 5:.1f}l4.5,-8h-9z"
        )
        fill = m.color if m.filled else "#ffffff"
        out.append(
            f'<path class="marker" d="{shape}" fill="{fill}" stroke="{m.color}" '
            f'stroke-width="1.3"><title>{esc(m.title)}</title></path>'
        )
    out.append(
        f'<line class="guide" x1="0" x2="0" y1="{top}" y2="{top + plot_h}" stroke="{INK}" '
        'stroke-width="0.8" visibility="hidden"/>'
    )
    if show_legend:
        out.append(
            _legend(
                [(s.name, s.color, s.dash, None) for s, _, _ in lines]
                + [(b.name, b.color, None, b.opacity) for b, *_ in areas],
                left,
            )
        )
    out.append("</svg>")
    return "".join(out)


def _legend(items: Sequence[tuple[str, str, str | None, float | None]], left: int) -> str:
    """Swatches along the top: a line for a series, a block (at its opacity) for a band."""
    out, x = [], float(left)
    for name, color, dash, opacity in items:
        if opacity is not None:
            out.append(
                f'<rect x="{x:.1f}" y="6" width="16" height="9" fill="{color}" '
                f'fill-opacity="{min(1.0, opacity * 1.6):.2f}"/>'
            )
        else:
            style = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="11" y2="11" stroke="{color}" '
                f'stroke-width="2"{style}/>'
            )
        out.append(f'<text x="{x + 21:.1f}" y="15">{esc(name)}</text>')
        x += 21 + 6.4 * len(name) + 16
    return "".join(out)


# --- heatmap ------------------------------------------------------------------------------

_RED = (207, 34, 46)
_GREEN = (26, 127, 55)
_PALE = (247, 247, 247)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    return tuple(round(p + (q - p) * t) for p, q in zip(a, b, strict=True))  # type: ignore[return-value]


def scale_color(value: float, lo: float, hi: float) -> tuple[int, int, int]:
    """Red for bad, green for good (larger is better): diverging around zero when the
    values straddle it, otherwise pale → green (all positive) or red → pale (all negative)."""
    if not math.isfinite(value):
        return (230, 230, 230)
    if lo < 0 < hi:
        return _mix(_PALE, _RED, value / lo) if value < 0 else _mix(_PALE, _GREEN, value / hi)
    t = 0.5 if hi == lo else (value - lo) / (hi - lo)
    if hi <= 0:
        return _mix(_RED, _PALE, 0.1 + 0.9 * t)
    return _mix(_PALE, _GREEN, 0.1 + 0.9 * t)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _ink_on(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#111827"


def heatmap(
    x_labels: Sequence[str],
    y_labels: Sequence[str],
    values: np.ndarray,
    *,
    x_title: str,
    y_title: str,
    value_title: str,
    fmt: Callable[[float], str],
    best: tuple[int, int] | None = None,
    width: int = 1000,
) -> str:
    """Cells ``values[row, col]`` (row ``i`` is ``y_labels[i]``, drawn bottom-up so y grows
    upwards); NaN cells are grey. ``best`` = (row, col) gets an outline."""
    values = np.asarray(values, dtype=np.float64)
    ny, nx = values.shape
    if nx == 0 or ny == 0:
        return _empty(width, 120, f"{value_title}: no data")
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    left, top, right = 82, 10, 110
    y_chars = max((len(s) for s in y_labels), default=1)
    left = max(left, 40 + 7 * min(y_chars, 14))
    plot_w = width - left - right
    cell_w = min(90.0, plot_w / nx)
    cell_h = min(34.0, max(10.0, cell_w * 0.55))
    plot_w = cell_w * nx
    plot_h = cell_h * ny
    height = int(top + plot_h + 46)
    show_values = cell_w >= 34 and cell_h >= 14
    x_every = max(1, math.ceil(nx / max(1, plot_w // 48)))
    y_every = max(1, math.ceil(ny / max(1, plot_h // 16)))
    out = [
        f'<svg class="chart heatmap" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(value_title)} heatmap" '
        f'font-size="{FONT}" fill="{INK}">'
    ]
    for row in range(ny):
        y = top + (ny - 1 - row) * cell_h
        if row % y_every == 0:
            out.append(
                f'<text x="{left - 6}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end">'
                f"{esc(y_labels[row])}</text>"
            )
        for col in range(nx):
            v = float(values[row, col])
            rgb = scale_color(v, lo, hi)
            x = left + col * cell_w
            shown = fmt(v) if math.isfinite(v) else "—"
            tip = f"{x_title}={x_labels[col]}, {y_title}={y_labels[row]}: {value_title} {shown}"
            klass = "cell" if math.isfinite(v) else "cell empty"
            out.append(
                f'<rect class="{klass}" x="{x:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
                f'height="{cell_h:.1f}" fill="{_hex(rgb)}" stroke="#ffffff" stroke-width="1">'
                f"<title>{esc(tip)}</title></rect>"
            )
            if show_values and math.isfinite(v):
                out.append(
                    f'<text x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{_ink_on(rgb)}" font-size="{FONT - 1}" '
                    f'pointer-events="none">{esc(shown)}</text>'
                )
    if best is not None:
        row, col = best
        out.append(
            f'<rect x="{left + col * cell_w + 1:.1f}" y="{top + (ny - 1 - row) * cell_h + 1:.1f}" '
            f'width="{cell_w - 2:.1f}" height="{cell_h - 2:.1f}" fill="none" stroke="#111827" '
            f'stroke-width="2" pointer-events="none"/>'
        )
    for col in range(0, nx, x_every):
        out.append(
            f'<text x="{left + (col + 0.5) * cell_w:.1f}" y="{top + plot_h + 15:.1f}" '
            f'text-anchor="middle">{esc(x_labels[col])}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34:.1f}" text-anchor="middle" '
        f'font-weight="600">{esc(x_title)} →</text>'
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" font-weight="600">{esc(y_title)} →</text>'
    )
    # colour scale: ten steps from low to high, labelled at both ends and the middle
    bar_x, bar_h = left + plot_w + 28, min(plot_h, 200.0)
    steps = 10
    for i in range(steps):
        v = lo + (hi - lo) * (i + 0.5) / steps
        y = top + bar_h - (i + 1) * bar_h / steps
        out.append(
            f'<rect x="{bar_x:.1f}" y="{y:.1f}" width="14" height="{bar_h / steps + 0.5:.1f}" '
            f'fill="{_hex(scale_color(v, lo, hi))}"/>'
        )
    for v, y in ((hi, top + 8), ((lo + hi) / 2, top + bar_h / 2 + 4), (lo, top + bar_h)):
        out.append(f'<text x="{bar_x + 20:.1f}" y="{y:.1f}">{esc(fmt(v))}</text>')
    out.append(f'<text x="{bar_x:.1f}" y="{top + bar_h + 16:.1f}">{esc(value_title)}</text>')
    out.append("</svg>")
    return "".join(out)
