"""``/execute``: a fixed allowlist of commands with typed parameters, audited.

Each command is a pydantic parameter model (unknown fields refused) and a handler that
calls the same service function as the CLI. Nothing here builds a shell line, a
subprocess or code from user text: the command name only selects an entry of
:data:`COMMANDS`, and parameters only reach the services as typed values.

Every call is written to ``command_audit`` — who (the token's name and id, the client
address), what (command and parameters), when, and the result or error — including
calls refused for an unknown command or bad parameters (status ``rejected``). The row is
written before the command runs, so one killed mid-way still shows (``running``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from breadthflow.core.errors import BreadthFlowError, InvalidInputError, unknown_name
from breadthflow.services.context import AppContext
from breadthflow.store._json import json_safe
from breadthflow.store.audit import AuditEntry, AuditRepository

#: An audited result larger than this (as JSON) is stored as a note, not in full.
AUDIT_RESULT_LIMIT = 32_000
MAX_SCAN_MATCHES = 1_000


class CommandParamsError(InvalidInputError):
    """Parameters that do not fit the command's model; ``errors`` lists field and reason."""

    def __init__(self, command: str, errors: list[dict[str, str]]) -> None:
        first = errors[0]
        super().__init__(f"invalid parameter '{first['field']}' of {command}: {first['reason']}")
        self.errors = errors


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors as ``[{"field": "a.b", "reason": "…"}]``."""
    found = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "(root)"
        reason = str(error["msg"]).removeprefix("Value error, ")
        found.append({"field": prefix + field, "reason": reason})
    return found


# --- parameter models ---------------------------------------------------------------------


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SymbolsParams(Params):
    symbols: list[str] | str | None = Field(None, description="Symbols (list or A,B,C)")
    universe: str | None = Field(None, max_length=64, description="A named universe")

    @model_validator(mode="after")
    def _one_source(self) -> SymbolsParams:
        if bool(self.symbols) == bool(self.universe):
            raise ValueError("give either symbols or universe (exactly one)")
        return self


class DataSummaryParams(Params):
    pass


class DataFetchParams(SymbolsParams):
    provider: str = Field("sample", max_length=64, description="sample, synthetic, yahoo, …")
    start: dt.date
    end: dt.date
    timeframe: str = Field("1d", max_length=8)


class SignalGenerateParams(SymbolsParams):
    strategy: str = Field(max_length=64)
    start: dt.date
    end: dt.date
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters")
    hl_window: int = Field(252, ge=2, le=5000)
    run_id: str | None = Field(None, max_length=64)


class SignalSummaryParams(Params):
    strategy: str | None = Field(None, max_length=64)
    symbol: str | None = Field(None, max_length=64)
    since: dt.date | None = None
    until: dt.date | None = None


class BacktestRunParams(SymbolsParams):
    strategy: str = Field(max_length=64)
    start: dt.date
    end: dt.date
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Engine settings: cash, fees, slippage, sizing, …"
    )
    hl_window: int = Field(252, ge=2, le=5000)
    trades: int = Field(50, ge=0, le=10_000, description="Return at most this many trades")


class PipelineNameParams(Params):
    name: str = Field(max_length=64)


class PipelineStatusParams(Params):
    name: str | None = Field(None, max_length=64)


class PipelineLogsParams(Params):
    run_id: str | None = Field(None, max_length=64, description="Default: the latest run")
    pipeline: str | None = Field(None, max_length=64, description="Latest run of this one")
    after_id: int = Field(0, ge=0)
    limit: int = Field(500, ge=1, le=5000)


class ScanParams(SymbolsParams):
    formula: str = Field(min_length=1, max_length=10_000)
    start: dt.date | None = None
    end: dt.date | None = None
    on: dt.date | None = None
    latest: bool = False
    limit: int | None = Field(None, ge=1, le=MAX_SCAN_MATCHES)


# --- handlers -----------------------------------------------------------------------------


def _data_summary(ctx: AppContext, _: DataSummaryParams) -> dict[str, Any]:
    from breadthflow.services.data import data_summary

    return data_summary(ctx)


def _data_fetch(ctx: AppContext, p: DataFetchParams) -> dict[str, Any]:
    from breadthflow.services.data import FetchRequest, fetch_bars

    report = fetch_bars(
        ctx, FetchRequest(p.provider, p.start, p.end, p.symbols, p.universe, p.timeframe)
    )
    return report.model_dump(mode="json", exclude={"issues"}) | {
        "issue_counts": report.issue_counts()
    }


def _signal_generate(ctx: AppContext, p: SignalGenerateParams) -> dict[str, Any]:
    from breadthflow.services.signals import generate_signals

    batch = generate_signals(
        ctx, p.strategy, p.start, p.end, p.symbols, p.universe, p.params, p.run_id, p.hl_window
    )
    return batch.model_dump(mode="json")


def _signal_summary(ctx: AppContext, p: SignalSummaryParams) -> dict[str, Any]:
    from breadthflow.services.signals import signal_filter, summarize_signals

    where = signal_filter(p.strategy, p.symbol, None, p.since, p.until)
    return {"strategies": [s.model_dump(mode="json") for s in summarize_signals(ctx, where)]}


def _backtest_run(ctx: AppContext, p: BacktestRunParams) -> dict[str, Any]:
    from breadthflow.services import backtest as bt

    study = bt.prepare_study(
        ctx, p.strategy, p.start, p.end, p.symbols, p.universe, p.params, p.config, p.hl_window
    )
    outcome = bt.run_backtest_study(ctx, study)
    return json_safe(outcome.summary(trades=p.trades))


def _pipeline_start(ctx: AppContext, p: PipelineNameParams) -> dict[str, Any]:
    from breadthflow.services.pipeline_control import start_pipeline

    stored, run = start_pipeline(ctx, p.name)
    return {"pipeline": stored.model_dump(mode="json"), "run": run.model_dump(mode="json")}


def _pipeline_stop(ctx: AppContext, p: PipelineNameParams) -> dict[str, Any]:
    from breadthflow.services.pipeline_control import stop_pipeline

    stored, cancelled = stop_pipeline(ctx, p.name)
    return {
        "pipeline": stored.model_dump(mode="json"),
        "cancelled": [r.run_id for r in cancelled],
    }


def _pipeline_status(ctx: AppContext, p: PipelineStatusParams) -> dict[str, Any]:
    from breadthflow.services.pipeline_control import pipeline_status

    return json_safe(pipeline_status(ctx, p.name))


def _pipeline_logs(ctx: AppContext, p: PipelineLogsParams) -> dict[str, Any]:
    from breadthflow.services.pipelines import latest_run_id, run_logs

    if p.run_id and p.pipeline:
        raise InvalidInputError("give run_id or pipeline, not both")
    chosen = p.run_id or latest_run_id(ctx, p.pipeline)
    if chosen is None:
        raise InvalidInputError("no runs yet — start one with pipeline_start")
    lines = run_logs(ctx, chosen, after_id=p.after_id, limit=p.limit)
    return {"run_id": chosen, "lines": [line.model_dump(mode="json") for line in lines]}


def _scan(ctx: AppContext, p: ScanParams) -> dict[str, Any]:
    from breadthflow.services.scan import run_scan, scan_range

    period = scan_range(p.start, p.end, p.on)
    outcome = run_scan(ctx, p.formula, period, p.symbols, p.universe, p.latest, p.limit)
    result = outcome.as_json()
    if len(result["matches"]) > MAX_SCAN_MATCHES:
        result["matches"] = result["matches"][:MAX_SCAN_MATCHES]
        result["matches_truncated"] = True
    return json_safe(result)


@dataclass(frozen=True)
class Command:
    name: str
    params: type[Params]
    handler: Callable[[AppContext, Any], dict[str, Any]]
    description: str


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("data_summary", DataSummaryParams, _data_summary, "What bars are stored"),
        Command("data_fetch", DataFetchParams, _data_fetch, "Fetch bars into the lake"),
        Command("signal_generate", SignalGenerateParams, _signal_generate,
                "Generate and store a strategy's signals"),
        Command("signal_summary", SignalSummaryParams, _signal_summary,
                "Stored signals per strategy"),
        Command("backtest_run", BacktestRunParams, _backtest_run,
                "Backtest a strategy and store the result"),
        Command("pipeline_start", PipelineNameParams, _pipeline_start,
                "Enable a pipeline and queue a run now"),
        Command("pipeline_stop", PipelineNameParams, _pipeline_stop,
                "Disable a pipeline and cancel its unfinished runs"),
        Command("pipeline_status", PipelineStatusParams, _pipeline_status,
                "Runner state and each pipeline's last and next run"),
        Command("pipeline_logs", PipelineLogsParams, _pipeline_logs, "A run's log lines"),
        Command("scan", ScanParams, _scan, "Scan a universe with a formula"),
    )
}  # fmt: skip


def catalog() -> list[dict[str, Any]]:
    """Every allowed command with the JSON schema of its parameters (for forms)."""
    return [
        {"name": c.name, "description": c.description, "parameters": c.params.model_json_schema()}
        for c in COMMANDS.values()
    ]


class CommandResult(BaseModel):
    audit_id: int
    command: str
    status: str
    result: dict[str, Any]
    duration: float


@dataclass(frozen=True)
class Caller:
    """Who asks: the token's name and id, and the client address."""

    actor: str
    token_id: int | None = None
    client: str | None = None


def _audited_result(result: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(result, default=str)
    if len(text) <= AUDIT_RESULT_LIMIT:
        return json.loads(text)
    return {"truncated": True, "bytes": len(text), "keys": sorted(result)[:50]}


def execute(
    ctx: AppContext, command: str, parameters: dict[str, Any] | None, caller: Caller
) -> CommandResult:
    """Validate, audit and run one allowlisted command.

    Raises :class:`InvalidInputError` for an unknown command, :class:`CommandParamsError`
    for bad parameters (both audited as ``rejected``) and the service's own error when
    the command fails (audited as ``failed``).

    >>> execute(ctx, "pipeline_status", {}, Caller("admin"))      # doctest: +SKIP
    """
    audit = AuditRepository(ctx.db)
    raw = dict(parameters or {})
    spec = COMMANDS.get(command)
    if spec is None:
        error = InvalidInputError(str(unknown_name("command", command, COMMANDS)))
        audit.start(caller.actor, command, raw, caller.token_id, caller.client,
                    status="rejected", error=str(error))  # fmt: skip
        raise error
    try:
        params = spec.params.model_validate(raw)
    except ValidationError as exc:
        error = CommandParamsError(command, validation_errors(exc, "parameters."))
        audit.start(caller.actor, command, raw, caller.token_id, caller.client,
                    status="rejected", error=str(error))  # fmt: skip
        raise error from None
    entry = audit.start(caller.actor, command, params.model_dump(mode="json"),
                        caller.token_id, caller.client)  # fmt: skip
    began = time.perf_counter()
    try:
        result = json_safe(spec.handler(ctx, params))
    except BreadthFlowError as exc:
        audit.finish(entry, "failed", error=str(exc))
        raise
    except BaseException as exc:
        audit.finish(entry, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    audit.finish(entry, "succeeded", result=_audited_result(result))
    return CommandResult(
        audit_id=entry,
        command=command,
        status="succeeded",
        result=result,
        duration=round(time.perf_counter() - began, 4),
    )


def audit_log(
    ctx: AppContext, limit: int = 50, offset: int = 0, command: str | None = None
) -> tuple[list[AuditEntry], int]:
    return AuditRepository(ctx.db).list(limit, offset, command)
