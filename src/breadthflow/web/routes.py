"""The dashboard: server-rendered pages under ``/ui`` and the small JSON endpoints that
feed their charts (``/ui/data/…``, column arrays).

Pages only read, through the service layer; forms and buttons that change something call
the JSON API (``/api/v1/…``) from the browser with the bearer token the user logged in
with, so every write passes the API's authentication and audit. The app that includes
this router may put an :class:`~breadthflow.services.context.AppContext` on
``app.state.ctx``; otherwise one is built from the settings on first use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mimetypes
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import polars as pl
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from breadthflow.core.config import mask_url
from breadthflow.core.errors import BreadthFlowError, InvalidInputError
from breadthflow.core.models import DateRange, normalize_symbol
from breadthflow.indicators.breadth import BREADTH_COLUMNS
from breadthflow.pipelines.definitions import ErrorPolicy, Kind, Mode, TriggerMode
from breadthflow.services import backtest as backtest_svc
from breadthflow.services import breadth as breadth_svc
from breadthflow.services import data as data_svc
from breadthflow.services import pipeline_control as control_svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services import scan as scan_svc
from breadthflow.services import signals as signals_svc
from breadthflow.services import tokens
from breadthflow.services.context import AppContext
from breadthflow.signals import STRATEGIES
from breadthflow.store.models import BACKTEST_KINDS, RUN_STATUSES
from breadthflow.web import _queries as q

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(prefix="/ui", include_in_schema=False)

# The high/low window for new highs/lows when the user gives none: the classic 52 weeks,
# or 50 days when less than ~1.6 years are stored (else the columns would never fill).
DEFAULT_HL_WINDOW, SHORT_HL_WINDOW = 252, 50
DEFAULT_UNIVERSE = "sample-sp500"
QUICK_FLOWS = {
    "demo": ("Demo", "demo_small", "8 symbols, the sample year"),
    "small": ("Small", "demo_small", "8 symbols"),
    "medium": ("Medium", "demo_medium", "20 symbols"),
    "full": ("Full", "sample-sp500", "the whole sample S&P 500 (~500 symbols)"),
}
SAMPLE_START, SAMPLE_END = "2009-08-21", "2010-08-20"
NAV = (
    ("overview", "/ui/", "Overview"),
    ("breadth", "/ui/breadth", "Breadth"),
    ("signals", "/ui/signals", "Signals"),
    ("pipelines", "/ui/pipelines", "Pipelines"),
    ("runs", "/ui/runs", "Runs"),
    ("backtests", "/ui/backtests", "Backtests"),
    ("scanner", "/ui/scanner", "Scanner"),
    ("commands", "/ui/commands", "Commands"),
    ("triggers", "/ui/triggers", "Triggers"),
    ("infrastructure", "/ui/infrastructure", "Infrastructure"),
)


def app_context(request: Request) -> AppContext:
    """The app's shared context (``app.state.ctx``), built once if the app has none."""
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None:
        ctx = AppContext()
        request.app.state.ctx = ctx
    return ctx


Ctx = Annotated[AppContext, Depends(app_context)]


def read_access(request: Request, ctx: Ctx) -> None:
    """Pages and chart data are public (a read-only dashboard) unless the API requires a
    token for reads (``api_read_requires_token``): then the token of the login page —
    ``Authorization: Bearer`` or the ``bf_token`` cookie it sets for ``/ui`` — must be a
    valid one. Writes never pass here: they go to the API, which checks the header."""
    if not ctx.settings.api_read_requires_token:
        return
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get("bf_token", "")
    if not token:
        raise HTTPException(401, "this dashboard needs an API token — log in at /ui/login")
    if tokens.authenticate(ctx, token) is None:
        raise HTTPException(401, "unknown or revoked token — log in again at /ui/login")


Read = [Depends(read_access)]


@contextmanager
def user_errors() -> Iterator[None]:
    """A user mistake in a query (bad date, unknown name) → its 4xx with the one line."""
    try:
        yield
    except BreadthFlowError as exc:
        raise HTTPException(status_code=exc.http_status, detail=exc.message) from None


def page(request: Request, name: str, active: str, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"nav": NAV, "active": active, **values})


def error_page(request: Request, exc: BreadthFlowError, active: str) -> HTMLResponse:
    response = page(request, "error.html", active, message=exc.message)
    response.status_code = exc.http_status
    return response


def _number(value: Any) -> str:
    """A table cell: whole numbers with separators, money-sized floats with 2 decimals,
    small ones with 4 significant digits; anything else as text."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN
        return "—"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


templates.env.filters["fmt"] = lambda v, spec=",.2f": "—" if v is None else format(v, spec)
templates.env.filters["pct"] = lambda v, d=1: "—" if v is None else f"{v * 100:.{d}f}%"
templates.env.filters["secs"] = lambda v: "—" if v is None else _seconds(v)
templates.env.filters["when"] = lambda v: "—" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
templates.env.filters["num"] = _number
# Static files are cached for an hour: their URLs carry a digest of our own JS and CSS, so
# an upgrade is fetched at once.
templates.env.globals["asset_version"] = hashlib.sha256(
    b"".join((STATIC / name).read_bytes() for name in ("app.js", "app.css"))
).hexdigest()[:10]


def _text(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


# --- static files (vendored libraries, CSS, JS) ------------------------------------------


@router.get("/static/{path:path}", name="web_static")
def static(path: str) -> FileResponse:
    """Files under ``web/static`` only; anything else (``..``, absolute paths) is a 404."""
    target = (STATIC / path).resolve()
    if not target.is_file() or not target.is_relative_to(STATIC.resolve()):
        raise HTTPException(status_code=404, detail=f"no static file '{path}'")
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers={"Cache-Control": "max-age=3600"})


# --- pages --------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login(request: Request) -> HTMLResponse:
    return page(request, "login.html", "login")


@router.post("/auth/check")
def auth_check(ctx: Ctx, token: Annotated[str, Body(embed=True, max_length=200)]) -> JSONResponse:
    """Whether a token is valid and what it may do — the login page's check, so a typo is
    caught before the first button fails. The token travels in the body, never the URL."""
    info = tokens.authenticate(ctx, token.strip())
    if info is None:
        return JSONResponse(
            {"ok": False, "message": "unknown or revoked token — check what you pasted"},
            status_code=401,
        )
    writes = tokens.can_write(info)
    return JSONResponse(
        {
            "ok": True,
            "name": info.name,
            "scope": info.scope,
            "can_write": writes,
            "message": f"logged in as '{info.name}' ({info.scope}"
            + (")" if writes else ", read-only: buttons that change something will be refused)"),
        }
    )


@router.get("/", response_class=HTMLResponse, dependencies=Read)
def overview(request: Request, ctx: Ctx) -> HTMLResponse:
    runs = pipelines_svc.list_runs(ctx, limit=1000)
    latest, total_signals = signals_svc.list_signals(ctx, limit=10)
    alerts, open_count = q.open_alerts(ctx)
    return page(
        request,
        "overview.html",
        "overview",
        kpis=q.run_kpis(runs),
        total_runs=control_svc.count_runs(ctx),
        recent_runs=runs[:8],
        signals=latest,
        total_signals=total_signals,
        regime=q.latest_regime(ctx),
        alerts=alerts,
        open_alerts=open_count,
        pipelines=len(pipelines_svc.list_pipelines(ctx)),
        stored=q.stored_range(ctx),
    )


@router.get("/breadth", response_class=HTMLResponse, dependencies=Read)
def breadth_page(
    request: Request,
    ctx: Ctx,
    universe: str | None = None,
    start: str | None = None,
    end: str | None = None,
    hl_window: str | None = None,
    strategy: str | None = None,
) -> HTMLResponse:
    stored = q.stored_range(ctx)
    chosen = _text(universe) or _default_universe(ctx)
    first = start or (stored[0].isoformat() if stored else "")
    last = end or (stored[1].isoformat() if stored else "")
    window = hl_window or str(_default_hl_window(stored))
    return page(
        request,
        "breadth.html",
        "breadth",
        universe=chosen,
        start=first,
        end=last,
        hl_window=window,
        stored=stored,
        universes=data_svc.list_universes(ctx),
        strategy=_text(strategy) or "",
        strategies=[s["name"] for s in signals_svc.strategy_catalog(ctx)["strategies"]
                    if s["level"] == "market"],
    )  # fmt: skip


def signal_query(
    strategy: str | None = None,
    symbol: str | None = None,
    type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    run_id: str | None = None,
) -> dict[str, str | None]:
    """The signal filters of a query string (the Signals page and its exports share them)."""
    return {
        "strategy": _text(strategy), "symbol": _text(symbol), "type": _text(type),
        "since": _text(since), "until": _text(until), "run_id": _text(run_id),
    }  # fmt: skip


SignalQuery = Annotated[dict[str, str | None], Depends(signal_query)]


@router.get("/signals", response_class=HTMLResponse, dependencies=Read)
def signals_page(
    request: Request,
    ctx: Ctx,
    filters: SignalQuery,
    limit: str | None = None,
    offset: str | None = None,
) -> HTMLResponse:
    try:
        where = _signal_filter(filters, _market_labels(ctx))
        size = q.check_limit(limit, "limit", 50, 500)
        skip = q.check_offset(offset)
        rows, total = signals_svc.list_signals(ctx, where, limit=size, offset=skip)
        summary = signals_svc.summarize_signals(ctx, where)
    except BreadthFlowError as exc:
        return error_page(request, exc, "signals")
    query = urlencode({k: v for k, v in filters.items() if v})
    market = _market_labels(ctx)
    stock_rows = [r.symbol for r in rows if r.symbol not in market]
    chart_symbol = (
        filters["symbol"] if filters["symbol"] and filters["symbol"] not in market else ""
    )
    chart_symbol = chart_symbol or (stock_rows[0] if stock_rows else "")
    return page(
        request,
        "signals.html",
        "signals",
        rows=rows,
        total=total,
        limit=size,
        offset=skip,
        filters=filters,
        query=query,
        summary=summary,
        strategies=sorted(STRATEGIES),
        chart_symbol=chart_symbol,
        market=market,
    )


@router.get("/pipelines", response_class=HTMLResponse, dependencies=Read)
def pipelines_page(request: Request, ctx: Ctx) -> HTMLResponse:
    rows = []
    for stored in pipelines_svc.list_pipelines(ctx):
        last = pipelines_svc.list_runs(ctx, stored.name, limit=1)
        rows.append({"pipeline": stored, "last": last[0] if last else None})
    return page(request, "pipelines.html", "pipelines", rows=rows)


@router.get("/pipelines/new", response_class=HTMLResponse, dependencies=Read)
def pipeline_new(request: Request) -> HTMLResponse:
    return _pipeline_form(request, None)


@router.get("/pipelines/{name}/edit", response_class=HTMLResponse, dependencies=Read)
def pipeline_edit(request: Request, ctx: Ctx, name: str) -> HTMLResponse:
    try:
        stored = pipelines_svc.get_pipeline(ctx, name)
    except BreadthFlowError as exc:
        return error_page(request, exc, "pipelines")
    return _pipeline_form(request, stored.definition())


def _pipeline_form(request: Request, definition: dict[str, Any] | None) -> HTMLResponse:
    return page(
        request,
        "pipeline_form.html",
        "pipelines",
        definition=definition,
        kinds=[k.value for k in Kind],
        modes=[m.value for m in Mode],
        trigger_modes=[t.value for t in TriggerMode],
        error_policies=[e.value for e in ErrorPolicy],
    )


@router.get("/runs", response_class=HTMLResponse, dependencies=Read)
def runs_page(
    request: Request,
    ctx: Ctx,
    pipeline: str | None = None,
    status: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
) -> HTMLResponse:
    try:
        size = q.check_limit(limit, "limit", 50, 500)
        skip = q.check_offset(offset)
        rows = pipelines_svc.list_runs(ctx, _text(pipeline), _text(status), limit=size, offset=skip)
        total = control_svc.count_runs(ctx, _text(pipeline), _text(status))
    except BreadthFlowError as exc:
        return error_page(request, exc, "runs")
    return page(
        request,
        "runs.html",
        "runs",
        rows=rows,
        pipeline=_text(pipeline) or "",
        status=_text(status) or "",
        statuses=RUN_STATUSES,
        total=total,
        pipelines=[p.name for p in pipelines_svc.list_pipelines(ctx)],
        limit=size,
        offset=skip,
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse, dependencies=Read)
def run_page(request: Request, ctx: Ctx, run_id: str) -> HTMLResponse:
    try:
        run, steps = pipelines_svc.run_detail(ctx, run_id)
    except BreadthFlowError as exc:
        return error_page(request, exc, "runs")
    logs = pipelines_svc.run_logs(ctx, run_id, limit=2000)
    return page(
        request,
        "run_detail.html",
        "runs",
        run=run,
        steps=steps,
        timeline=_timeline(run, steps),
        logs=logs,
        last_log_id=logs[-1].id if logs else 0,
        signal=q.trigger_signal(run.trigger_payload) if run.trigger == "signal" else None,
    )


def _timeline(run: Any, steps: list[Any]) -> list[dict[str, Any]]:
    """Each step's offset and width as a share of the run's span, for the timeline bars."""
    if not steps:
        return []
    begin = min(s.started_at for s in steps)
    ends = [s.finished_at or run.end_time or s.started_at for s in steps]
    span = max((e - begin).total_seconds() for e in ends) or 1.0
    bars = []
    for step, finish in zip(steps, ends, strict=True):
        left = (step.started_at - begin).total_seconds() / span
        width = max((finish - step.started_at).total_seconds() / span, 0.005)
        bars.append({"step": step, "left": left * 100, "width": min(width, 1 - left) * 100})
    return bars


@router.get("/backtests", response_class=HTMLResponse, dependencies=Read)
def backtests_page(
    request: Request,
    ctx: Ctx,
    strategy: str | None = None,
    kind: str | None = None,
    limit: str | None = None,
    offset: str | None = None,
) -> HTMLResponse:
    try:
        size = q.check_limit(limit, "limit", 50, 500)
        skip = q.check_offset(offset)
        chosen = _text(kind)
        if chosen is not None and chosen not in BACKTEST_KINDS:
            raise InvalidInputError(
                f"unknown backtest kind '{chosen}' — expected one of {', '.join(BACKTEST_KINDS)}"
            )
        rows, total = backtest_svc.list_backtests(ctx, size, skip, _text(strategy), chosen)
    except BreadthFlowError as exc:
        return error_page(request, exc, "backtests")
    return page(
        request,
        "backtests.html",
        "backtests",
        rows=rows,
        total=total,
        kinds=BACKTEST_KINDS,
        kind=chosen or "",
        strategy=_text(strategy) or "",
        strategies=sorted(STRATEGIES),
        limit=size,
        offset=skip,
    )


@router.get("/backtests/{backtest_id}", response_class=HTMLResponse, dependencies=Read)
def backtest_page(request: Request, ctx: Ctx, backtest_id: int) -> HTMLResponse:
    try:
        summary, frames = backtest_svc.show_backtest(ctx, backtest_id)
    except BreadthFlowError as exc:
        return error_page(request, exc, "backtests")
    stats = summary.stats or {}
    scalar = {
        k: v for k, v in stats.items() if isinstance(v, int | float | str | bool) or v is None
    }
    trades = frames.get("trades")
    return page(
        request,
        "backtest_detail.html",
        "backtests",
        bt=summary,
        stats=scalar,
        percentiles={k: v for k, v in stats.items() if k.endswith("_pct") and isinstance(v, dict)},
        trades=trades.tail(200).reverse().to_dicts() if trades is not None else [],
        trade_count=trades.height if trades is not None else 0,
        trade_columns=trades.columns if trades is not None else [],
        heatmap=q.heatmap(stats) if summary.kind == "optimize" else None,
        has_equity="equity" in frames,
        has_fan="fan" in frames,
        folds=stats.get("folds") if summary.kind == "walkforward" else None,
    )


@router.get("/scanner", response_class=HTMLResponse, dependencies=Read)
def scanner_page(
    request: Request, ctx: Ctx, scan: str | None = None, formula: str | None = None
) -> HTMLResponse:
    scans, total = scan_svc.list_scans(ctx, limit=20)
    shown, matches = None, None
    try:
        if _text(scan):
            assert scan is not None
            shown, frame = scan_svc.show_scan(ctx, _positive_int(scan, "scan id"))
            matches = frame.head(500) if frame is not None else None
    except BreadthFlowError as exc:
        return error_page(request, exc, "scanner")
    stored = q.stored_range(ctx)
    return page(
        request,
        "scanner.html",
        "scanner",
        scans=scans,
        total=total,
        shown=shown,
        matches=matches.to_dicts() if matches is not None else [],
        match_columns=matches.columns if matches is not None else [],
        formula=formula or (shown.formula if shown else "close > sma(close, 50)"),
        universe=shown.universe if shown else _default_universe(ctx),
        stored=stored,
    )


@router.get("/commands", response_class=HTMLResponse, dependencies=Read)
def commands_page(request: Request, ctx: Ctx) -> HTMLResponse:
    return page(
        request,
        "commands.html",
        "commands",
        flows=QUICK_FLOWS,
        sample=(SAMPLE_START, SAMPLE_END),
        strategies=sorted(STRATEGIES),
        universes=[u["name"] for u in data_svc.list_universes(ctx)],
        pipelines=[p.name for p in pipelines_svc.list_pipelines(ctx)],
    )


@router.get("/triggers", response_class=HTMLResponse, dependencies=Read)
def triggers_page(request: Request, ctx: Ctx) -> HTMLResponse:
    runs = pipelines_svc.list_runs(ctx, limit=1000)
    signal_pipelines = [p for p in pipelines_svc.list_pipelines(ctx) if p.trigger_mode == "signal"]
    return page(
        request,
        "triggers.html",
        "triggers",
        stats=q.signal_run_stats(runs),
        recent=[r for r in runs if r.trigger == "signal"][:20],
        signal_of=q.trigger_signal,
        signal_pipelines=signal_pipelines,
    )


@router.get("/infrastructure", response_class=HTMLResponse, dependencies=Read)
def infrastructure_page(request: Request, ctx: Ctx) -> HTMLResponse:
    s = ctx.settings
    components = [
        ("database", "Metadata DB", mask_url(s.resolved_database_url)),
        ("lake", "Market-data lake", mask_url(s.resolved_lake_url)),
        ("bus", "Event bus", mask_url(s.bus_url)),
        ("executor", "Executor", mask_url(s.executor_url)),
        ("engine", "Compute engine", s.engine),
    ]
    return page(request, "infrastructure.html", "infrastructure", components=components)


# --- chart data (column arrays) ------------------------------------------------------------


@router.get("/data/breadth", dependencies=Read)
def breadth_data(
    ctx: Ctx,
    universe: str | None = None,
    symbols: str | None = None,
    start: str | None = None,
    end: str | None = None,
    hl_window: str | None = None,
    strategy: str | None = None,
) -> JSONResponse:
    """The breadth table of a universe (or symbols) over a range, as column arrays, with
    the stored market-level BUY/SELL signals of that universe (of one ``strategy``, or
    all) and the Zweig thrust dates."""
    with user_errors():
        period, window = _breadth_inputs(ctx, start, end, hl_window)
        chosen = None if _text(symbols) else (_text(universe) or _default_universe(ctx))
        table = breadth_svc.compute_breadth(
            ctx, period.start, period.end, symbols=_text(symbols), universe=chosen,
            hl_window=window,
        )  # fmt: skip
        wanted = data_svc.resolve_symbols(ctx, _text(symbols), chosen)
        label = signals_svc.universe_label(chosen, wanted)
        where = signals_svc.signal_filter(
            strategy=_text(strategy), symbol=label, since=period.start, until=period.end
        )
        rows, _ = signals_svc.list_signals(ctx, where, limit=5000)
    thrusts = table.filter(pl.col("zbt_thrust").fill_null(False))["date"]
    return JSONResponse(
        {
            "universe": label,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "hl_window": window,
            "columns": q.columns(table, BREADTH_COLUMNS),
            "thrusts": [d.isoformat() for d in thrusts],
            "markers": [_marker(s) for s in reversed(rows) if s.signal_type.value != "HOLD"],
        }
    )


def _breadth_inputs(
    ctx: AppContext, start: str | None, end: str | None, hl_window: str | None
) -> tuple[DateRange, int]:
    stored = q.stored_range(ctx)
    if (not start or not end) and stored is None:
        raise InvalidInputError(
            "no daily bars stored — fetch some with `breadthflow data fetch`, or give start and end"
        )
    first = start or stored[0].isoformat()  # type: ignore[index]
    last = end or stored[1].isoformat()  # type: ignore[index]
    period = DateRange.parse(first, last)
    if hl_window is None or hl_window == "":
        return period, _default_hl_window(stored)
    return period, _positive_int(hl_window, "hl_window", least=2)


@router.get("/data/candles", dependencies=Read)
def candle_data(
    ctx: Ctx,
    symbol: str | None = None,
    start: str | None = None,
    end: str | None = None,
    strategy: str | None = None,
) -> JSONResponse:
    """A symbol's daily OHLCV and its stored BUY/SELL signals in the same range."""
    with user_errors():
        if not _text(symbol):
            raise InvalidInputError("missing symbol — expected e.g. ?symbol=AAPL")
        assert symbol is not None
        ticker = normalize_symbol(symbol)
        stored = q.stored_range(ctx)
        if stored is None and (not start or not end):
            raise InvalidInputError("no daily bars stored — give start and end")
        period = DateRange.parse(
            start or stored[0].isoformat(),  # type: ignore[index]
            end or stored[1].isoformat(),  # type: ignore[index]
        )
        where = signals_svc.signal_filter(
            strategy=_text(strategy), symbol=ticker, since=period.start, until=period.end
        )
        bars = q.candles(ctx, ticker, period.start, period.end)
        rows, _ = signals_svc.list_signals(ctx, where, limit=5000)
    if bars.height == 0:
        raise HTTPException(
            status_code=404,
            detail=f"no 1d bars stored for {ticker} between {period.start} and {period.end}",
        )
    return JSONResponse(
        {
            "symbol": ticker,
            "columns": q.columns(bars),
            "markers": [_marker(s) for s in reversed(rows) if s.signal_type.value != "HOLD"],
        }
    )


def _marker(signal: Any) -> dict[str, Any]:
    return {
        "date": signal.date.isoformat(),
        "strategy": signal.strategy,
        "signal_type": signal.signal_type.value,
        "confidence": signal.confidence,
    }


@router.get("/data/runs", dependencies=Read)
def runs_data(
    ctx: Ctx, pipeline: str | None = None, limit: str | None = None, window: str | None = None
) -> JSONResponse:
    """Finished runs oldest first: duration and the trailing success rate."""
    with user_errors():
        size = q.check_limit(limit, "limit", 500, 5000)
        span = q.check_limit(window, "window", 20, 1000)
        runs = pipelines_svc.list_runs(ctx, _text(pipeline), limit=size)
    return JSONResponse({"window": span, "columns": q.run_trend(runs, span)})


@router.get("/data/runs/{run_id}/logs", dependencies=Read)
def run_logs_data(ctx: Ctx, run_id: str, after_id: str | None = None) -> JSONResponse:
    """Log lines after ``after_id`` (the fallback when the event stream is unavailable)."""
    with user_errors():
        after = q.check_offset(after_id)
        run, _ = pipelines_svc.run_detail(ctx, run_id)
        lines = pipelines_svc.run_logs(ctx, run_id, after_id=after)
    return JSONResponse(
        {
            "status": run.status,
            "lines": [{k: q.plain(v) for k, v in line.model_dump().items()} for line in lines],
        }
    )


@router.get("/data/backtests/{backtest_id}", dependencies=Read)
def backtest_data(ctx: Ctx, backtest_id: int) -> JSONResponse:
    """Equity and drawdown (percent from the running peak) and, for Monte Carlo, the fan."""
    with user_errors():
        summary, frames = backtest_svc.show_backtest(ctx, backtest_id)
    body: dict[str, Any] = {"id": summary.id, "kind": summary.kind}
    equity = frames.get("equity")
    if equity is not None:
        curve = equity.select(
            "date",
            "equity",
            ((pl.col("equity") / pl.col("equity").cum_max() - 1.0) * 100.0).alias("drawdown_pct"),
        )
        body["equity"] = q.columns(curve)
    fan = frames.get("fan")
    if fan is not None:
        body["fan"] = q.columns(fan)
    return JSONResponse(body)


@router.get("/data/scan/check", dependencies=Read)
def scan_check(formula: str = "") -> JSONResponse:
    """Compile a formula without running it: ``ok`` or the one-line error and its position."""
    if not formula.strip():
        return JSONResponse({"ok": False, "error": "empty formula", "line": 1, "column": 1})
    try:
        compiled = scan_svc.check(formula)
    except BreadthFlowError as exc:
        return JSONResponse(
            {
                "ok": False,
                "error": exc.message,
                "line": getattr(exc, "line", None),
                "column": getattr(exc, "column", None),
            }
        )
    return JSONResponse(
        {
            "ok": True,
            "formula": compiled.text,
            "values": list(compiled.value_names),
            "needs_breadth": compiled.needs_breadth,
        }
    )


# --- exports -------------------------------------------------------------------------------


@router.get("/export/signals.{extension}", dependencies=Read)
def export_signals(ctx: Ctx, extension: str, filters: SignalQuery) -> Response:
    """The signals matching the page's filters as CSV or Parquet (``factors`` as JSON)."""
    with user_errors():
        if extension not in ("csv", "parquet"):
            raise InvalidInputError(f"cannot export to '.{extension}' — expected csv or parquet")
        where = _signal_filter(filters, _market_labels(ctx))
        rows, _ = signals_svc.list_signals(ctx, where, limit=1_000_000)
    frame = signals_svc.signals_frame(rows)
    buffer = io.BytesIO()
    if extension == "csv":
        frame.write_csv(buffer)
        media = "text/csv"
    else:
        frame.write_parquet(buffer)
        media = "application/vnd.apache.parquet"
    return Response(
        buffer.getvalue(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="signals.{extension}"'},
    )


# --- helpers ---------------------------------------------------------------------------------


def _market_labels(ctx: AppContext) -> set[str]:
    """Names market-level signals are stored under (universes), not ticker symbols."""
    return {u["name"] for u in data_svc.list_universes(ctx)}


def _symbol_text(value: str | None, market: set[str]) -> str | None:
    """A ticker is upper-cased and checked; a universe name (or ``custom-…``) is kept."""
    if value is None:
        return None
    if value in market or value.startswith("custom-"):
        return value
    return normalize_symbol(value)


def _signal_filter(filters: Mapping[str, str | None], market: set[str]) -> Any:
    return signals_svc.signal_filter(
        strategy=filters["strategy"],
        symbol=_symbol_text(filters["symbol"], market),
        signal_type=filters["type"],
        since=filters["since"],
        until=filters["until"],
        pipeline_run_id=filters["run_id"],
    )


def _positive_int(value: str, name: str, least: int = 1) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInputError(
            f"invalid {name} '{value}' — expected a whole number >= {least}"
        ) from None
    if number < least:
        raise InvalidInputError(f"invalid {name} {number} — expected a whole number >= {least}")
    return number


def _default_hl_window(stored: tuple[dt.date, dt.date] | None) -> int:
    if stored is None or (stored[1] - stored[0]).days >= 580:
        return DEFAULT_HL_WINDOW
    return SHORT_HL_WINDOW


def _default_universe(ctx: AppContext) -> str:
    """The universe of the newest market-level signal, else the sample S&P 500."""
    regime = q.latest_regime(ctx)
    if regime and not str(regime["universe"]).startswith("custom-"):
        return str(regime["universe"])
    return DEFAULT_UNIVERSE


__all__ = ["app_context", "router"]
