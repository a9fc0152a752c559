"""``breadthflow pipeline …``: define pipelines, run them now or on a schedule, watch runs."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from breadthflow.cli._common import FormatOpt, context
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.core.errors import InvalidInputError
from breadthflow.services import pipelines as svc

app = typer.Typer(
    help="Pipelines: definitions, runs now or on a schedule, status and logs (docs/pipelines.md).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Pipeline name.")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="breadth, research, training, paper.")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="demo, all_symbols or custom_symbols.")]
SymbolsOpt = Annotated[str | None, typer.Option("--symbols", "-s", help="Comma-separated.")]
UniverseOpt = Annotated[str | None, typer.Option("--universe", "-u", help="A named universe.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="Data provider.")]
ScheduleOpt = Annotated[
    str | None, typer.Option("--schedule", help="Interval (5m, 1h, 1d) or cron ('30 16 * * 1-5').")
]
TimezoneOpt = Annotated[
    str | None, typer.Option("--timezone", help="Time zone of a cron schedule.")
]
TriggerOpt = Annotated[str | None, typer.Option("--trigger-mode", help="periodic or signal.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Parameter NAME=VALUE (JSON values ok).")
]
ErrorPolicyOpt = Annotated[str | None, typer.Option("--error-policy", help="retry, skip, stop.")]
WebhookOpt = Annotated[str | None, typer.Option("--webhook", help="Notify this URL on failures.")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="Notify these addresses (comma).")]


def _values(**options: Any) -> dict[str, Any]:
    """Only the options given, as definition fields."""
    values: dict[str, Any] = {}
    for key in (
        "kind",
        "mode",
        "symbols",
        "universe",
        "provider",
        "schedule",
        "timezone",
        "trigger_mode",
        "error_policy",
    ):
        if options.get(key) is not None:
            values[key] = options[key]
    if options.get("param"):
        values["parameters"] = _params(options["param"])
    notifications: dict[str, Any] = {}
    if options.get("webhook"):
        notifications["webhook_url"] = options["webhook"]
    if options.get("email"):
        notifications["email_to"] = [a.strip() for a in options["email"].split(",") if a.strip()]
    if notifications:
        values["notifications"] = notifications
    return values


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"invalid --param '{pair}' — expected NAME=VALUE")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value.strip()
    return params


STATUS_COLUMNS = (
    "name", "active", "schedule", "next_run_at", "last_status", "last_start", "last_duration_s",
)  # fmt: skip
PIPELINE_COLUMNS = ("name", "kind", "mode", "schedule", "trigger", "active", "next_run_at")


def _row(p: Any) -> dict[str, Any]:
    return {
        "name": p.name,
        "kind": p.kind,
        "mode": p.mode,
        "schedule": p.schedule,
        "trigger": p.trigger_mode,
        "active": p.is_active,
        "next_run_at": p.next_run_at,
    }


@app.command("create")
def create(
    name: NameArg,
    kind: KindOpt = None,
    mode: ModeOpt = None,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    provider: ProviderOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    trigger_mode: TriggerOpt = None,
    param: ParamOpt = None,
    error_policy: ErrorPolicyOpt = None,
    webhook: WebhookOpt = None,
    email: EmailOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Define a pipeline."""
    values = _values(
        kind=kind,
        mode=mode,
        symbols=symbols,
        universe=universe,
        provider=provider,
        schedule=schedule,
        timezone=timezone,
        trigger_mode=trigger_mode,
        param=param,
        error_policy=error_policy,
        webhook=webhook,
        email=email,
    )
    stored = svc.create_pipeline(context(), {"name": name, **values})
    emit_record(stored.model_dump(), fmt, title=f"Pipeline {stored.name} created")


@app.command("update")
def update(
    name: NameArg,
    kind: KindOpt = None,
    mode: ModeOpt = None,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    provider: ProviderOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    trigger_mode: TriggerOpt = None,
    param: ParamOpt = None,
    error_policy: ErrorPolicyOpt = None,
    webhook: WebhookOpt = None,
    email: EmailOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Change some fields of a pipeline (the rest stay)."""
    values = _values(
        kind=kind,
        mode=mode,
        symbols=symbols,
        universe=universe,
        provider=provider,
        schedule=schedule,
        timezone=timezone,
        trigger_mode=trigger_mode,
        param=param,
        error_policy=error_policy,
        webhook=webhook,
        email=email,
    )
    if not values:
        raise InvalidInputError("nothing to change — give at least one option")
    stored = svc.update_pipeline(context(), name, values)
    emit_record(stored.model_dump(), fmt, title=f"Pipeline {stored.name} updated")


@app.command("list")
def list_(fmt: FormatOpt = Format.table) -> None:
    """Defined pipelines."""
    rows = [_row(p) for p in svc.list_pipelines(context())]
    emit_rows(rows, fmt, title="Pipelines", columns=PIPELINE_COLUMNS)


@app.command("show")
def show(name: NameArg, fmt: FormatOpt = Format.table) -> None:
    """One pipeline's definition and its latest runs."""
    ctx = context()
    stored = svc.get_pipeline(ctx, name)
    runs = svc.list_runs(ctx, name, limit=10)
    if fmt is not Format.table:
        emit_record({**stored.model_dump(), "runs": [r.model_dump() for r in runs]}, fmt)
        return
    emit_record(stored.model_dump(), fmt, title=f"Pipeline {name}")
    if runs:
        emit_rows([_run_row(r) for r in runs], fmt, title="Latest runs")


@app.command("delete")
def delete(name: NameArg) -> None:
    """Delete a pipeline and its run history."""
    svc.delete_pipeline(context(), name)
    out.print(f"deleted pipeline {name}", markup=False, highlight=False)


@app.command("enable")
def enable(name: NameArg) -> None:
    """Let the scheduler run it again."""
    stored = svc.set_active(context(), name, True)
    out.print(f"enabled {name}; next run {stored.next_run_at or '—'}", markup=False)


@app.command("disable")
def disable(name: NameArg) -> None:
    """Stop scheduling it (a run in progress finishes)."""
    svc.set_active(context(), name, False)
    out.print(f"disabled {name}", markup=False, highlight=False)


def _run_row(r: Any) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "pipeline": r.pipeline_name,
        "trigger": r.trigger,
        "status": r.status,
        "start": r.start_time,
        "duration_s": r.duration,
        "symbols": r.symbols_processed,
        "signals": r.signals_generated,
        "errors": r.error_count,
        "attempt": r.attempt,
        "cpu_s": r.cpu_seconds,
        "peak_mb": r.peak_memory_mb,
    }


@app.command("run")
def run(name: NameArg, fmt: FormatOpt = Format.table) -> None:
    """Run a pipeline once now, in the foreground; its steps are shown when it ends."""
    ctx = context()
    with err.status(f"running pipeline {name} …"):
        outcome = svc.run_now(ctx, name)
    summary, steps = svc.run_detail(ctx, outcome.run_id)
    if fmt is not Format.table:
        emit_record({**summary.model_dump(), "steps": [s.model_dump() for s in steps]}, fmt)
    else:
        emit_record(
            _run_row(summary) | {"backtest": summary.backtest_results},
            fmt,
            title=f"Run {outcome.run_id}: {outcome.status}",
        )
        emit_rows(
            [
                {"step": s.name, "status": s.status, "duration_s": s.duration, "error": s.error}
                for s in steps
            ],
            fmt,
            title="Steps",
        )
    if outcome.status in ("failed", "cancelled"):
        raise typer.Exit(1)


@app.command("runs")
def runs(
    name: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run history, newest first."""
    rows = [_run_row(r) for r in svc.list_runs(context(), name, status, limit)]
    emit_rows(rows, fmt, title="Runs", columns=list(rows[0]) if rows else ["run_id"])


@app.command("start")
def start(
    names: Annotated[list[str] | None, typer.Argument(help="Pipelines to enable first.")] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="demo: create/update the 'demo' pipeline.")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="Schedule of the demo pipeline, e.g. 1m.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Worker threads.")] = 2,
) -> None:
    """Start the background runner (scheduler + workers) and return."""
    from breadthflow.pipelines.runner import start_background

    ctx = context()
    if mode is not None:
        if mode != "demo":
            raise InvalidInputError(f"invalid --mode '{mode}' — only 'demo' creates a pipeline")
        _ensure_demo(ctx, interval or "5m")
    elif interval is not None:
        raise InvalidInputError("--interval goes with --mode demo (use `pipeline update`)")
    for name in names or []:
        svc.set_active(ctx, name, True)
    pid = start_background(ctx, concurrency)
    out.print(
        f"runner started (pid {pid}); `breadthflow pipeline status` to watch, "
        "`breadthflow pipeline stop` to stop",
        markup=False,
        highlight=False,
    )


def _ensure_demo(ctx: Any, interval: str) -> None:
    try:
        svc.get_pipeline(ctx, "demo")
    except Exception:
        svc.create_pipeline(ctx, {"name": "demo", "mode": "demo", "schedule": interval})
        return
    svc.update_pipeline(ctx, "demo", {"mode": "demo", "schedule": interval, "is_active": True})


@app.command("stop")
def stop(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 120.0,
) -> None:
    """Stop the runner gracefully: it finishes the current step, then exits."""
    from breadthflow.pipelines.runner import stop_background

    with err.status("stopping the runner (finishing the current work) …"):
        pid = stop_background(context(), timeout)
    out.print(
        "no runner was running" if pid is None else f"runner (pid {pid}) stopped",
        markup=False,
        highlight=False,
    )


@app.command("status")
def status(fmt: FormatOpt = Format.table) -> None:
    """Is the runner alive; each pipeline's last run, next run time and open alerts."""
    overview = svc.status_overview(context())
    pipelines = [
        _row(p.pipeline) | p.last_run | {"open_alerts": p.open_alerts} for p in overview.pipelines
    ]
    runner = {"pid": overview.runner_pid, "alive": overview.runner_alive}
    if fmt is not Format.table:
        emit_record({"runner": runner, "pipelines": pipelines}, fmt)
        return
    alive = f"running (pid {runner['pid']})" if runner["alive"] else "not running"
    out.print(f"runner: {alive}", markup=False, highlight=False)
    emit_rows(pipelines, fmt, title="Pipelines", columns=STATUS_COLUMNS)
    if alerts := sum(p.open_alerts for p in overview.pipelines):
        out.print(f"{alerts} open alert(s) — `breadthflow alerts`", markup=False, highlight=False)


@app.command("logs")
def logs(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: the latest run).")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Latest run of this.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """A run's log lines; --follow until the run ends."""
    ctx = context()
    chosen = run_id or svc.latest_run_id(ctx, pipeline)
    if chosen is None:
        raise InvalidInputError("no runs yet — `breadthflow pipeline run NAME` starts one")
    after = 0

    def show_new() -> None:
        nonlocal after
        for line in svc.run_logs(ctx, chosen, after_id=after):
            step = f" [{line.step}]" if line.step else ""
            out.print(
                f"{line.time:%Y-%m-%d %H:%M:%S} {line.level:<7}{step} {line.message}",
                markup=False,
                highlight=False,
            )
            after = line.id

    while True:
        show_new()
        if not follow or svc.run_detail(ctx, chosen)[0].finished:
            if follow:  # lines written between the last read and the end
                show_new()
            return
        time.sleep(1.0)


@app.command("serve", hidden=True)
def serve(
    concurrency: Annotated[int, typer.Option("--concurrency")] = 2,
) -> None:
    """The runner itself, in the foreground (what `pipeline start` launches)."""
    from breadthflow.pipelines.runner import Runner

    ctx = context()
    Runner(ctx, concurrency=concurrency).serve()
