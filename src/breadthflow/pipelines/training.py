"""The ``training`` kind: fetch → dataset → walk-forward folds → fit → (promote).

Each run:

1. **fetch** (per symbol, checkpointed): bars the lake lacks, ``start`` → ``end``.
2. **dataset**: features (per-stock technicals + breadth, docs/models.md) and the label —
   the forward return over ``horizon`` bars — for every symbol and date of the range.
3. **fold-1 … fold-K**: walk-forward folds in time order (``ml.folds``): train on the
   dates before the test window minus a ``gap`` (default: ``horizon``, so no training
   label reaches into the test window), score the test window, record IC, rank IC, hit
   rate, MSE or accuracy. Each fold is its own checkpointed step: a restarted run skips
   the folds already done. Test-window predictions go to the lake
   (``results/training/<pipeline>/<run_id>/fold-<k>.parquet``).
4. **fit**: the model on every row, saved and registered as the next version of
   ``model_name`` with its features, folds, metrics, data range, parameters and the
   scikit-learn version (``services.models``).
5. **promote** (``promote = "always"``, or ``"if_better"`` when its mean out-of-sample
   rank IC beats the production version's).

Parameters and defaults: :data:`DEFAULTS`; the ``demo`` mode trains on ``demo_small``
over the bundled sample year.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe
from breadthflow.ml.estimators import ESTIMATORS, estimator_params
from breadthflow.ml.evaluation import mean_metrics
from breadthflow.ml.folds import walk_forward_folds
from breadthflow.ml.training import fit, run_fold
from breadthflow.pipelines._market import SAMPLE_END, SAMPLE_START, MarketPipeline
from breadthflow.services import models as models_svc
from breadthflow.signals.features import build_dataset, check_features, check_horizon
from breadthflow.store.model_registry import ModelRepository

DEFAULTS: dict[str, Any] = {
    "horizon": 5,  # label: forward return over this many bars
    "features": None,  # None: every feature of signals.features
    "hl_window": 50,  # breadth new-high/low look-back, bars
    "estimator": "ridge",  # ridge | hgb | logistic
    "model_params": {},  # estimator parameters (ml.estimators)
    "n_folds": 4,
    "test_days": 20,  # trading dates per test window
    "gap": None,  # dates left out between train and test (None: horizon)
    "min_train_days": 60,
    "train_days": None,  # None: expanding training window; N: rolling, N dates
    "model_name": None,  # None: the pipeline's name
    "promote": "never",  # never | always | if_better
}
DEMO: dict[str, Any] = {"universe": "demo_small", "start": SAMPLE_START, "end": SAMPLE_END}
PROMOTE = ("never", "always", "if_better")
INPUT_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]


class TrainingPipeline(MarketPipeline):
    """Walk-forward training of a scikit-learn model; one checkpointed step per fold."""

    KIND = "training"
    DEFAULTS = DEFAULTS
    DEMO = DEMO

    def check(self) -> dict[str, Any]:
        """Every parameter checked before any work (one line per mistake)."""
        s = self.settings
        if s["estimator"] not in ESTIMATORS:
            raise InvalidInputError(
                f"unknown estimator '{s['estimator']}' — known: {', '.join(ESTIMATORS)}"
            )
        if s["promote"] not in PROMOTE:
            raise InvalidInputError(
                f"invalid promote={s['promote']!r} — expected one of {', '.join(PROMOTE)}"
            )
        horizon = check_horizon(s["horizon"])
        gap = horizon if s["gap"] is None else s["gap"]
        if not isinstance(gap, int) or gap < horizon:
            raise InvalidInputError(
                f"invalid gap={gap!r} — expected at least horizon={horizon} dates, or the "
                "last training labels would overlap the test window"
            )
        return {
            "horizon": horizon,
            "gap": gap,
            "features": check_features(s["features"]),
            "params": estimator_params(s["estimator"], s["model_params"]),
            "model_name": models_svc.check_model_name(s["model_name"] or self.definition.name),
            "hl_window": self.integer("hl_window", 2),
            "n_folds": self.integer("n_folds"),
            "test_days": self.integer("test_days"),
            "min_train_days": self.integer("min_train_days"),
            "train_days": self.integer("train_days", optional=True),
        }

    def execute(self) -> None:
        checked = self.check()
        symbols, universe = self.universe()
        start, end = self.pinned_range("dataset")
        present = self.fetch_step(symbols, start, end)
        if len(present) < 2:
            raise InvalidInputError(
                f"training needs bars for at least 2 symbols; the lake has {len(present)}"
            )
        features, horizon = checked["features"], checked["horizon"]
        bars = self.ctx.lake.read(present, Timeframe.D1, start, end, columns=INPUT_COLUMNS)
        dataset = build_dataset(bars, horizon, features, checked["hl_window"])
        if dataset.height == 0:
            raise InvalidInputError(
                f"no complete rows between {start} and {end} — the features need "
                f"about 60 bars of history and the label {horizon} more: widen the range"
            )
        dates = dataset["date"].unique().sort().to_list()

        def describe() -> dict[str, Any]:
            return {
                "rows": dataset.height, "symbols": dataset["symbol"].n_unique(),
                "dates": len(dates), "first": dates[0].isoformat(), "last": dates[-1].isoformat(),
                "range_start": start.isoformat(), "range_end": end.isoformat(),
            }  # fmt: skip

        self.run_step("dataset", describe)
        s = self.settings
        folds = walk_forward_folds(
            dates, checked["n_folds"], checked["test_days"], checked["gap"],
            checked["min_train_days"], checked["train_days"],
        )  # fmt: skip
        results: list[dict[str, Any]] = []
        prefix = f"results/training/{self.definition.name}/{self.run_id}"
        for fold in folds:

            def one(fold: Any = fold) -> dict[str, Any]:
                metrics, scored = run_fold(
                    dataset, fold, features, s["estimator"], checked["params"]
                )
                self.ctx.lake.write_table(f"{prefix}/fold-{fold.number}.parquet", scored)
                dates_iso = {k: v.isoformat() for k, v in fold.as_dict().items() if k != "number"}
                return {"fold": fold.number, **dates_iso, **metrics}

            results.append(self.run_step(f"fold-{fold.number}", one))
        summary = mean_metrics(results)
        name = checked["model_name"]

        def final() -> dict[str, Any]:
            already = [
                m
                for m in ModelRepository(self.ctx.db).list(name)
                if m.pipeline_run_id == self.run_id
            ]
            if already:  # saved before a crash, checkpoint lost: do not register twice
                saved = already[0]
            else:
                estimator, task = fit(dataset, features, s["estimator"], checked["params"])
                saved = models_svc.save_model(
                    self.ctx,
                    name,
                    estimator,
                    {
                        "estimator": s["estimator"],
                        "task": task,
                        "params": {
                            **checked["params"],
                            "hl_window": checked["hl_window"],
                            "gap": checked["gap"],
                            "train_days": s["train_days"],
                            "test_days": int(s["test_days"]),
                        },
                        "features": features,
                        "horizon": horizon,
                        "universe": self.label(symbols, universe),
                        "symbols": present,
                        "data_start": start,
                        "data_end": dataset_end(bars),
                        "folds": results,
                        "metrics": summary,
                        "pipeline_run_id": self.run_id,
                    },
                )
            return {"model": saved.name, "version": saved.version, "sha256": saved.sha256,
                    "rows": dataset.height}  # fmt: skip

        fitted = self.run_step("fit", final)
        if s["promote"] != "never":
            self.run_step("promote", lambda: self._promote(name, fitted["version"], summary))
        self.backtest_results = {
            "model": name, "version": fitted["version"], "folds": len(results),
            **{k: summary.get(k) for k in ("ic", "rank_ic", "hit_rate", "mse", "accuracy")},
        }  # fmt: skip

    def _promote(self, name: str, version: int, summary: dict[str, Any]) -> dict[str, Any]:
        repo = ModelRepository(self.ctx.db)
        current = next((m for m in repo.list(name) if m.status == "production"), None)
        if self.settings["promote"] == "if_better" and current is not None:
            ours, theirs = summary.get("rank_ic"), current.metrics.get("rank_ic")
            if ours is None or (theirs is not None and ours <= theirs):
                self.log(
                    "info",
                    f"version {version} not promoted: rank IC {ours} vs production "
                    f"v{current.version} {theirs}",
                )
                return {"promoted": False, "production": current.version}
        models_svc.promote_model(self.ctx, name, version)
        return {"promoted": True, "production": version}


def dataset_end(bars: pl.DataFrame) -> Any:
    """The last bar used by anything, labels included: out-of-sample data starts after it."""
    return bars["date"].max()
