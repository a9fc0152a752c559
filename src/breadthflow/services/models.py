"""Model services: the registry of trained models (save, load, list, promote, compare).

Artefacts are written by :func:`save_model` only, under ``$BREADTHFLOW_HOME/models/<name>/``
(joblib), atomically (write aside, fsync, rename), and their SHA-256 is stored in the
``ml_models`` table. :func:`load_model` reads the bytes once, refuses them unless their
hash equals the stored one, and only then unpickles — so the registry never loads a file
it did not write, nor one changed since. There is no "load this path" function.

The ``model_prediction`` strategy gets its models from here (:func:`registry_predictor`,
installed when ``breadthflow.services`` is imported).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from breadthflow.core.errors import ConfigError, InvalidInputError
from breadthflow.core.models import DateRange, Timeframe
from breadthflow.services.context import AppContext
from breadthflow.services.data import resolve_symbols
from breadthflow.signals.features import LABEL, build_dataset, warmup_bars
from breadthflow.store.model_registry import ModelRepository, ModelVersion

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ARTEFACT_FORMAT = 1
STRATEGY_INPUT_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")


def models_dir(ctx: AppContext) -> Path:
    return ctx.settings.home / "models"


def check_model_name(name: str) -> str:
    value = name.strip()
    if not NAME_PATTERN.match(value):
        raise InvalidInputError(
            f"invalid model name {name!r} — expected 1-64 lower-case letters, digits, '-' or "
            "'_', starting with a letter or digit"
        )
    return value


# --- saving and loading ---------------------------------------------------------------------


def save_model(
    ctx: AppContext, name: str, estimator: Any, metadata: Mapping[str, Any]
) -> ModelVersion:
    """Write the fitted ``estimator`` and register it as the next version of ``name``.

    ``metadata``: the ``ml_models`` columns besides name/version/status/artefact/hash
    (estimator, task, params, features, horizon, universe, symbols, data_start, data_end,
    folds, metrics, pipeline_run_id); the scikit-learn version is added here.
    """
    import joblib
    import sklearn

    name = check_model_name(name)
    folder = models_dir(ctx) / name
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump({"format": ARTEFACT_FORMAT, "estimator": estimator}, buffer)
    data = buffer.getvalue()
    relative = f"{name}/{uuid.uuid4().hex}.joblib"
    target = models_dir(ctx) / relative
    aside = target.with_suffix(".tmp")
    with open(aside, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(aside, target)
    return ModelRepository(ctx.db).add(
        name,
        {
            **dict(metadata),
            "sklearn_version": sklearn.__version__,
            "artifact": relative,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
        },
    )


def _artefact_path(ctx: AppContext, stored: ModelVersion) -> Path:
    root = models_dir(ctx).resolve()
    path = (root / stored.artifact).resolve()
    if not path.is_relative_to(root):  # a row edited to point elsewhere
        raise ConfigError(
            f"model {stored.name} v{stored.version}: artefact path {stored.artifact!r} is "
            f"outside {root} — refusing to load it"
        )
    return path


def load_model(ctx: AppContext, name: str, version: int | None = None) -> tuple[ModelVersion, Any]:
    """The stored version and its fitted estimator, after checking the file's SHA-256."""
    import joblib
    import sklearn

    stored = ModelRepository(ctx.db).get(check_model_name(name), version)
    path = _artefact_path(ctx, stored)
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(
            f"model {stored.name} v{stored.version}: cannot read its artefact {path}: "
            f"{exc.strerror or exc}"
        ) from None
    # A file changed since it was verified has another size or time: verified again.
    key = (str(path), stored.sha256, info.st_size, info.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return stored, _cache[key]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"model {stored.name} v{stored.version}: cannot read its artefact {path}: "
            f"{exc.strerror or exc}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != stored.sha256:
        raise ConfigError(
            f"model {stored.name} v{stored.version}: artefact {path} has SHA-256 "
            f"{digest[:12]}…, the registry recorded {stored.sha256[:12]}… — the file was "
            "changed after it was saved; refusing to load it (retrain the model)"
        )
    if stored.sklearn_version != sklearn.__version__:
        # Pickles across scikit-learn versions may load yet predict differently.
        raise ConfigError(
            f"model {stored.name} v{stored.version} was saved with scikit-learn "
            f"{stored.sklearn_version}, this is {sklearn.__version__} — retrain it"
        )
    payload = joblib.load(io.BytesIO(data))  # bytes verified above: written by save_model
    estimator = payload["estimator"]
    with _cache_lock:
        _cache[key] = estimator
    return stored, estimator


_cache: dict[tuple[str, str, int, int], Any] = {}
_cache_lock = threading.Lock()


@dataclass
class LoadedModel:
    """A model version ready to score feature rows (the ``Predictor`` of the strategy)."""

    meta: ModelVersion
    estimator: Any

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def features(self) -> list[str]:
        return list(self.meta.features)

    @property
    def hl_window(self) -> int:
        return int(self.meta.params.get("hl_window", 252))

    def score(self, x: np.ndarray) -> np.ndarray:
        from breadthflow.ml.estimators import score

        return score(self.estimator, self.meta.task, x)


def load_predictor(ctx: AppContext, name: str, version: int | None = None) -> LoadedModel:
    meta, estimator = load_model(ctx, name, version)
    return LoadedModel(meta, estimator)


def registry_predictor(name: str, version: int | None) -> LoadedModel:
    """The ``model_prediction`` strategy's predictor source (installed by
    ``breadthflow.services``): a version from the registry of the current settings."""
    return load_predictor(AppContext(), name, version)


# --- reading and promoting ------------------------------------------------------------------


def list_models(ctx: AppContext, name: str | None = None) -> list[ModelVersion]:
    return ModelRepository(ctx.db).list(check_model_name(name) if name else None)


def show_model(ctx: AppContext, name: str, version: int | None = None) -> ModelVersion:
    return ModelRepository(ctx.db).get(check_model_name(name), version)


def promote_model(ctx: AppContext, name: str, version: int) -> ModelVersion:
    """Make ``version`` the production version (what ``model_prediction`` uses by default);
    the artefact is verified first, so a broken version is never promoted."""
    load_model(ctx, name, version)
    return ModelRepository(ctx.db).promote(check_model_name(name), version)


# --- A/B comparison -------------------------------------------------------------------------


def model_bars(
    ctx: AppContext, symbols: Sequence[str], start: dt.date, end: dt.date, hl_window: int
) -> pl.DataFrame:
    """Daily bars of ``symbols`` from the features' warm-up before ``start`` to ``end``."""
    warmup_days = math.ceil(warmup_bars(hl_window) * 7 / 5) + 10
    return ctx.lake.read(
        list(symbols),
        Timeframe.D1,
        start - dt.timedelta(days=warmup_days),
        end,
        columns=list(STRATEGY_INPUT_COLUMNS),
    )


def scored_rows(
    model: LoadedModel, bars: pl.DataFrame, start: dt.date, end: dt.date
) -> pl.DataFrame:
    """``date, symbol, label, score`` of ``model`` for rows dated start → end whose label is
    known (the forward return needs ``horizon`` later bars)."""
    data = build_dataset(bars, model.meta.horizon, model.features, model.hl_window)
    data = data.filter(pl.col("date").is_between(start, end))
    x = data.select(model.features).to_numpy().astype(np.float64)
    return data.select("date", "symbol", LABEL).with_columns(
        pl.Series("score", model.score(x) if data.height else [], dtype=pl.Float64)
    )


def compare_models(
    ctx: AppContext,
    name: str,
    version_a: int,
    version_b: int,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
) -> dict[str, Any]:
    """Both versions scored on the same rows, out of sample by default: from the day after
    the later of the two training ranges to the newest stored bar, on model A's symbols.

    Returns each version's metrics (``ml.evaluation``), B minus A, the daily rank-IC
    difference's t statistic, and which version wins on rank IC.
    """
    from breadthflow.ml.evaluation import evaluate_scores

    a = load_predictor(ctx, name, version_a)
    b = load_predictor(ctx, name, version_b)
    if a.meta.horizon != b.meta.horizon:
        raise InvalidInputError(
            f"versions {version_a} and {version_b} predict different horizons "
            f"({a.meta.horizon} and {b.meta.horizon} bars) — compare versions of one target"
        )
    wanted = resolve_symbols(ctx, symbols, universe) if (symbols or universe) else a.meta.symbols
    trained_until = max(a.meta.data_end, b.meta.data_end)
    coverage = ctx.lake.coverage(Timeframe.D1, wanted)
    if coverage.height == 0:
        raise InvalidInputError("no stored bars for the comparison symbols — fetch them first")
    first = start or (trained_until + dt.timedelta(days=1))
    last = end or coverage["last_date"].max()
    if start is None and end is None and first > last:
        raise InvalidInputError(
            f"no bars after {trained_until}, where version {version_a} or {version_b} stopped "
            "training — fetch newer bars, or give --start/--end (in-sample then)"
        )
    period = DateRange.parse(first, last)
    bars = model_bars(ctx, wanted, period.start, period.end, max(a.hl_window, b.hl_window))
    rows_a = scored_rows(a, bars, period.start, period.end)
    rows_b = scored_rows(b, bars, period.start, period.end)
    both = rows_a.join(
        rows_b.select("date", "symbol", pl.col("score").alias("score_b")),
        on=["date", "symbol"],
        how="inner",
    )
    if both.height == 0:
        raise InvalidInputError(
            f"no rows to compare between {period.start} and {period.end}: the forward return "
            f"needs {a.meta.horizon} later bars — pass an earlier --start (out-of-sample data "
            f"begins after {trained_until})"
        )
    metrics_a = evaluate_scores(both.select("date", "symbol", "score", LABEL), a.meta.task)
    metrics_b = evaluate_scores(
        both.select("date", "symbol", pl.col("score_b").alias("score"), LABEL), b.meta.task
    )
    diff = {
        k: (metrics_b[k] - metrics_a[k])
        if metrics_a.get(k) is not None and metrics_b.get(k) is not None
        else None
        for k in ("ic", "rank_ic", "ic_pooled", "hit_rate", "mse", "accuracy", "long_short")
    }
    t_stat = _daily_rank_ic_t(both)
    ra, rb = metrics_a.get("rank_ic"), metrics_b.get("rank_ic")
    winner = None if ra is None or rb is None or ra == rb else (version_b if rb > ra else version_a)
    return {
        "model": a.name,
        "a": {"version": version_a, "status": a.meta.status, "metrics": metrics_a},
        "b": {"version": version_b, "status": b.meta.status, "metrics": metrics_b},
        "b_minus_a": diff,
        "rank_ic_diff_t": t_stat,
        "winner": winner,
        "start": period.start,
        "end": period.end,
        "rows": both.height,
        "symbols": len(wanted),
        "out_of_sample": period.start > trained_until,
    }


def _daily_rank_ic_t(both: pl.DataFrame) -> float | None:
    """t statistic of the mean daily difference in rank IC (B − A)."""
    from breadthflow.ml.evaluation import MIN_CROSS_SECTION

    ranked = both.with_columns(
        pl.col("score").rank("average").over("date").alias("ra"),
        pl.col("score_b").rank("average").over("date").alias("rb"),
        pl.col(LABEL).rank("average").over("date").alias("rl"),
    )
    daily = (
        ranked.group_by("date")
        .agg(
            pl.len().alias("n"),
            pl.corr("ra", "rl").alias("ic_a"),
            pl.corr("rb", "rl").alias("ic_b"),
        )
        .filter(pl.col("n") >= MIN_CROSS_SECTION)
        .with_columns((pl.col("ic_b") - pl.col("ic_a")).fill_nan(None).alias("d"))
        .drop_nulls("d")
    )
    if daily.height < 3:
        return None
    d = daily["d"].to_numpy()
    sd = float(np.std(d, ddof=1))
    return float(d.mean() / (sd / math.sqrt(d.size))) if sd > 0 else None
