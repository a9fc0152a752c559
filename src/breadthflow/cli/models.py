"""``breadthflow models …``: model versions — list, show, promote, compare (docs/models.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from breadthflow.cli._common import FormatOpt, SymbolsOpt, UniverseOpt, context
from breadthflow.cli._lazy import LazyModule
from breadthflow.cli._output import Format, emit_record, emit_rows, out

# scikit-learn is imported when a model is loaded, not on every `breadthflow` start.
svc = LazyModule("breadthflow.services.models")

app = typer.Typer(
    help="Trained models: list, show, promote, compare (docs/models.md).", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Model name (a training pipeline's model_name).")]
LIST_COLUMNS = ("name", "version", "status", "estimator", "horizon", "universe", "data_start",
                "data_end", "rank_ic", "ic", "hit_rate", "created_at")  # fmt: skip


def _row(model: Any) -> dict[str, Any]:
    metrics = model.metrics or {}
    return {**model.model_dump(), **{k: metrics.get(k) for k in ("ic", "rank_ic", "hit_rate")}}


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every stored model version, newest first per model."""
    rows = [_row(m) for m in svc.list_models(context(), name)]
    emit_rows(rows, fmt, title="Models", columns=LIST_COLUMNS)


@app.command("show")
def show(
    name: NameArg,
    version: Annotated[
        int | None, typer.Argument(help="Version (default: production, else newest).")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """One version with its features, folds, metrics, data range and artefact hash."""
    model = svc.show_model(context(), name, version)
    if fmt is not Format.table:
        emit_record(model.model_dump(), fmt)
        return
    record = model.model_dump()
    folds = record.pop("folds")
    emit_record(record, fmt, title=f"Model {model.name} v{model.version}")
    shown = ("fold", "train_start", "train_end", "test_start", "test_end", "n", "ic", "rank_ic",
             "hit_rate", "mse", "accuracy")  # fmt: skip
    emit_rows(folds, fmt, title="Walk-forward folds", columns=shown)


@app.command("promote")
def promote(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="The version to put in production.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Make a version the production one (model_prediction's default)."""
    model = svc.promote_model(context(), name, version)
    if fmt is Format.table:
        out.print(f"model {model.name} v{model.version} is now in production")
    else:
        emit_record(_row(model), fmt)


@app.command("compare")
def compare(
    name: NameArg,
    a: Annotated[int, typer.Argument(help="Version A.")],
    b: Annotated[int, typer.Argument(help="Version B.")],
    start: Annotated[
        str | None, typer.Option("--start", help="First date (default: after both trainings).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last date (default: newest bar).")
    ] = None,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """A/B: both versions scored on the same out-of-sample rows."""
    result = svc.compare_models(context(), name, a, b, start, end, symbols, universe)
    if fmt is not Format.table:
        emit_record(result, fmt)
        return
    first, second = result["a"]["metrics"], result["b"]["metrics"]
    rows = [
        {"metric": k, f"v{a}": first.get(k), f"v{b}": second.get(k),
         "b_minus_a": result["b_minus_a"].get(k)}
        for k in ("ic", "rank_ic", "ic_pooled", "hit_rate", "mse", "accuracy", "long_short")
    ]  # fmt: skip
    emit_rows(rows, fmt, title=f"{result['model']}: v{a} vs v{b}, {result['start']} → "
              f"{result['end']}, {result['rows']} rows")  # fmt: skip
    winner = result["winner"]
    out.print(f"winner on rank IC: {'v' + str(winner) if winner else 'tie'}"
              f" (t = {result['rank_ic_diff_t']})")  # fmt: skip
