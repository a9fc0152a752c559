"""Out-of-sample evaluation of a model's scores against realised forward returns.

For a set of rows ``(date, symbol, score, label)``:

- ``ic``: the mean over dates of the cross-sectional Pearson correlation between score
  and label (dates with fewer than 3 symbols, or a constant score or label, are skipped);
- ``rank_ic``: the same with Spearman's rank correlation (Pearson on average ranks);
- ``ic_pooled``: Pearson over all rows at once;
- ``hit_rate``: the share of rows with a non-zero label whose score has the label's sign;
- ``mse``: mean squared error of score vs label (regression models);
- ``accuracy``: share of rows where ``score > 0`` equals ``label > 0`` (classifiers);
- ``long_short``: mean label of the top-third minus the bottom-third of symbols by score,
  per date, averaged over dates (a simple spread of what the ranking would have earned).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

MIN_CROSS_SECTION = 3


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _mean(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(clean)) if clean else None


def evaluate_scores(frame: pl.DataFrame, task: str = "regression") -> dict[str, Any]:
    """Metrics of ``frame`` (columns ``date, symbol, score, label``); see the module doc."""
    frame = frame.drop_nulls(["score", "label"])
    n = frame.height
    metrics: dict[str, Any] = {"n": n, "dates": frame["date"].n_unique() if n else 0}
    if n == 0:
        return metrics | dict.fromkeys(
            ("ic", "rank_ic", "ic_pooled", "hit_rate", "mse", "accuracy", "long_short")
        )
    ranked = frame.with_columns(
        pl.col("score").rank("average").over("date").alias("_rs"),
        pl.col("label").rank("average").over("date").alias("_rl"),
    )
    ics, rank_ics, spreads = [], [], []
    for _, day in ranked.group_by("date", maintain_order=True):
        if day.height < MIN_CROSS_SECTION:
            continue
        s, y = day["score"].to_numpy(), day["label"].to_numpy()
        ics.append(_pearson(s, y))
        rank_ics.append(_pearson(day["_rs"].to_numpy(), day["_rl"].to_numpy()))
        third = max(1, day.height // 3)
        order = np.argsort(s, kind="stable")
        spreads.append(float(y[order[-third:]].mean() - y[order[:third]].mean()))
    score, label = frame["score"].to_numpy(), frame["label"].to_numpy()
    moved = label != 0
    hits = np.sign(score[moved]) == np.sign(label[moved])
    metrics.update(
        ic=_mean(ics),
        rank_ic=_mean(rank_ics),
        ic_pooled=_pearson(score, label),
        hit_rate=float(hits.mean()) if hits.size else None,
        long_short=_mean(spreads),
    )
    if task == "classification":
        metrics["accuracy"] = float(((score > 0) == (label > 0)).mean())
        metrics["mse"] = None
    else:
        metrics["mse"] = float(np.mean((score - label) ** 2))
        metrics["accuracy"] = None
    return metrics


def mean_metrics(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each metric over folds (None where no fold has it)."""
    keys = [k for k in ("ic", "rank_ic", "ic_pooled", "hit_rate", "mse", "accuracy", "long_short")]
    summary: dict[str, Any] = {k: _mean([f.get(k) for f in per_fold]) for k in keys}
    summary["n"] = int(sum(f.get("n", 0) for f in per_fold))
    summary["folds"] = len(per_fold)
    return summary
