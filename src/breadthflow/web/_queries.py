"""Read helpers the dashboard pages share: KPIs, trends, column arrays for the charts.

Everything here reads through the service layer (a symbol's bars, which no service
returns yet, through the lake the services use) and returns plain Python values the
templates and the JSON data endpoints render.
Nothing here writes: every write goes through the JSON API and its bearer tokens.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, parse_date
from breadthflow.services import alerts as alerts_svc
from breadthflow.services import data as data_svc
from breadthflow.services import signals as signals_svc
from breadthflow.services.context import AppContext
from breadthflow.store.alerts import StoredAlert
from breadthflow.store.runs import RunSummary

FINISHED = ("succeeded", "partial", "failed", "cancelled")
CANDLE_COLUMNS = ("date", "open", "high", "low", "close", "volume")


# --- JSON-ready column arrays -----------------------------------------------------------


def plain(value: Any) -> Any:
    """One cell as JSON: dates as ISO text, NaN and infinities as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def columns(frame: pl.DataFrame, names: Iterable[str] | None = None) -> dict[str, list[Any]]:
    """A frame as ``{column: [values…]}`` — the shape uPlot draws without reshaping."""
    chosen = list(names) if names is not None else frame.columns
    return {name: [plain(v) for v in frame.get_column(name).to_list()] for name in chosen}


# --- runs ---------------------------------------------------------------------------------


def run_kpis(runs: Sequence[RunSummary]) -> dict[str, Any]:
    """Counts, success rate (succeeded / finished) and mean duration of finished runs."""
    finished = [r for r in runs if r.status in FINISHED]
    succeeded = sum(1 for r in finished if r.status == "succeeded")
    durations = [r.duration for r in finished if r.duration is not None]
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.status] = by_status.get(run.status, 0) + 1
    return {
        "runs": len(runs),
        "finished": len(finished),
        "succeeded": succeeded,
        "success_rate": succeeded / len(finished) if finished else None,
        "avg_duration": sum(durations) / len(durations) if durations else None,
        "by_status": by_status,
        "active": by_status.get("running", 0) + by_status.get("queued", 0),
    }


def run_trend(runs: Sequence[RunSummary], window: int = 20) -> dict[str, list[Any]]:
    """Finished runs oldest first with their duration and the success rate of the last
    ``window`` finished runs up to and including each one (a trailing, not centred, mean)."""
    finished = sorted(
        (r for r in runs if r.status in FINISHED), key=lambda r: (r.queued_at, r.run_id)
    )
    ok = [1.0 if r.status == "succeeded" else 0.0 for r in finished]
    rate: list[float] = []
    for i in range(len(ok)):
        recent = ok[max(0, i - window + 1) : i + 1]
        rate.append(sum(recent) / len(recent))
    return {
        "time": [r.queued_at.timestamp() for r in finished],
        "run_id": [r.run_id for r in finished],
        "status": [r.status for r in finished],
        "duration": [r.duration for r in finished],
        "success_rate": rate,
    }


def trigger_signal(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The signal a signal-triggered run was started by, from its ``trigger_payload``
    (the signal itself, or under a ``signal`` key), or None. Confidence is shown as sent
    (0-100 on the bus, 0-1 for stored signals)."""
    nested = payload.get("signal")
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else payload
    ticker = source.get("ticker") or source.get("symbol")
    # The bus's ticker shape says ``signal: BULLISH``; stored signals say ``signal_type``.
    word = source.get("signal")
    bias = source.get("bias") or (word if isinstance(word, str) else None)
    bias = bias or source.get("signal_type")
    if not ticker and not bias:
        return None
    return {
        "ticker": ticker,
        "bias": bias,
        "confidence": source.get("confidence"),
        "strategy": source.get("strategy"),
        "date": source.get("date"),
        "time": source.get("time") or source.get("create_time"),
    }


def signal_run_stats(runs: Sequence[RunSummary]) -> dict[str, Any]:
    """What the stored runs say about signal → pipeline dispatch: runs enqueued by a
    signal, their outcome per signal bias, and enqueue latency (queued_at − signal time)."""
    triggered = [r for r in runs if r.trigger == "signal"]
    by_bias: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    for run in triggered:
        signal = trigger_signal(run.trigger_payload) or {}
        bias = str(signal.get("bias") or "unknown").upper()
        row = by_bias.setdefault(bias, {"bias": bias, "runs": 0, "finished": 0, "succeeded": 0})
        row["runs"] += 1
        if run.status in FINISHED:
            row["finished"] += 1
            row["succeeded"] += run.status == "succeeded"
        sent = _timestamp(signal.get("time"))
        if sent is not None:
            latencies.append(max(0.0, (run.queued_at - sent).total_seconds()))
    for row in by_bias.values():
        row["success_rate"] = row["succeeded"] / row["finished"] if row["finished"] else None
    latencies.sort()
    return {
        "runs": len(triggered),
        "by_bias": sorted(by_bias.values(), key=lambda r: r["bias"]),
        "latency_p50": _quantile(latencies, 0.5),
        "latency_p95": _quantile(latencies, 0.95),
        "latencies": len(latencies),
    }


def _timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    if not values:
        return None
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


# --- alerts, data range, market regime ----------------------------------------------------


def open_alerts(ctx: AppContext, shown: int = 10) -> tuple[list[StoredAlert], int]:
    """The newest unacknowledged alerts and how many there are (counted up to 1,000)."""
    alerts = alerts_svc.list_alerts(ctx, limit=1000)
    return alerts[:shown], len(alerts)


# Reading every partition's footer takes a while on thousands of symbols, and several
# pages want the range on each view: remember it per lake for a few seconds.
RANGE_TTL_SECONDS = 10.0
_ranges: dict[str, tuple[float, tuple[dt.date, dt.date] | None]] = {}


def stored_range(ctx: AppContext) -> tuple[dt.date, dt.date] | None:
    """First and last date of the stored daily bars, or None when nothing is stored
    (at most ``RANGE_TTL_SECONDS`` old)."""
    key = ctx.settings.resolved_lake_url
    cached = _ranges.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < RANGE_TTL_SECONDS:
        return cached[1]
    found = None
    cov = data_svc.coverage(ctx, Timeframe.D1)
    if cov.height:
        found = (_as_date(cov["first_date"].min()), _as_date(cov["last_date"].max()))
    _ranges[key] = (now, found)
    return found


def _as_date(value: Any) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else parse_date(value)


def latest_regime(ctx: AppContext, universe: str | None = None) -> dict[str, Any] | None:
    """The newest ``breadth_composite`` signal (BUY = risk-on, SELL = risk-off, HOLD =
    neutral): the market's current breadth regime."""
    where = signals_svc.signal_filter(strategy="breadth_composite", symbol=universe)
    rows, _ = signals_svc.list_signals(ctx, where, limit=1)
    if not rows:
        return None
    signal = rows[0]
    label = {"BUY": "risk-on", "SELL": "risk-off"}.get(signal.signal_type.value, "neutral")
    return {
        "universe": signal.symbol,
        "date": signal.date,
        "signal_type": signal.signal_type.value,
        "label": label,
        "confidence": signal.confidence,
        "score": signal.factors.get("score"),
    }


# --- a symbol's bars ------------------------------------------------------------------------


def candles(ctx: AppContext, symbol: str, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Daily OHLCV of one symbol between two dates (inclusive), oldest first."""
    bars = ctx.lake.read([symbol], Timeframe.D1, start, end, columns=list(CANDLE_COLUMNS))
    return bars.select(CANDLE_COLUMNS).sort("date")


# --- backtests ---------------------------------------------------------------------------


def heatmap(stats: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The optimisation table of an ``optimize`` backtest as a grid over its first two
    parameters (the best objective value where other parameters vary), or None."""
    if not stats or not stats.get("table") or not stats.get("grid"):
        return None
    names = list(stats["grid"])
    objective = str(stats.get("objective") or "sharpe")
    table = stats["table"]
    if len(names) == 1:
        names = [names[0], ""]
    x_name, y_name = names[0], names[1]
    cells: dict[tuple[Any, Any], float] = {}
    for row in table:
        value = row.get(objective)
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        key = (row.get(x_name), row.get(y_name) if y_name else "")
        cells[key] = max(value, cells.get(key, -math.inf))
    if not cells:
        return None
    xs = sorted({k[0] for k in cells}, key=_sort_key)
    ys = sorted({k[1] for k in cells}, key=_sort_key)
    low, high = min(cells.values()), max(cells.values())
    grid = [
        [{"value": cells.get((x, y)), "shade": _shade(cells.get((x, y)), low, high)} for x in xs]
        for y in ys
    ]
    return {"x": x_name, "y": y_name, "xs": xs, "ys": ys, "rows": grid, "objective": objective,
            "low": low, "high": high}  # fmt: skip


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _shade(value: float | None, low: float, high: float) -> float | None:
    if value is None:
        return None
    return 0.5 if high == low else (value - low) / (high - low)


def check_limit(value: str | None, name: str, default: int, most: int) -> int:
    """A page size from the query string: a whole number 1 … ``most``."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInputError(
            f"invalid {name} '{value}' — expected a whole number from 1 to {most}"
        ) from None
    if not 1 <= number <= most:
        raise InvalidInputError(f"invalid {name} {number} — expected 1 to {most}")
    return number


def check_offset(value: str | None) -> int:
    if value is None or value == "":
        return 0
    try:
        number = int(value)
    except ValueError:
        raise InvalidInputError(
            f"invalid offset '{value}' — expected a whole number >= 0"
        ) from None
    if number < 0:
        raise InvalidInputError(f"invalid offset {number} — expected a whole number >= 0")
    return number
