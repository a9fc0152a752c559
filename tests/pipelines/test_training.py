"""The training kind: causal features, leak-free folds, resumable folds, the model registry,
the model_prediction strategy and A/B comparison — on the bundled sample."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.config import get_settings
from breadthflow.core.errors import ConfigError, InvalidInputError, NotFoundError
from breadthflow.data.providers import get_provider
from breadthflow.data.providers.sample import load_sample
from breadthflow.data.universes import resolve_universe
from breadthflow.ml.evaluation import evaluate_scores
from breadthflow.ml.folds import walk_forward_folds
from breadthflow.pipelines import training as training_mod
from breadthflow.services import models as models_svc
from breadthflow.services import paper as paper_svc
from breadthflow.services import pipelines as pipelines_svc
from breadthflow.services.context import AppContext
from breadthflow.services.data import fetch_symbol
from breadthflow.services.signals import generate_signals
from breadthflow.signals import MarketData, build_strategy
from breadthflow.signals.features import FEATURES, build_dataset, build_features, build_labels
from breadthflow.store import close_all
from breadthflow.store.db import open_database
from breadthflow.store.models import ModelVersionRow
from breadthflow.store.runs import RunRepository

CUTS = [dt.date(2009, 12, 15), dt.date(2010, 5, 20)]
TRAIN_END = "2010-06-30"


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    close_all()
    get_settings.cache_clear()
    yield
    close_all()


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    sample = load_sample()
    return sample.filter(pl.col("symbol").is_in(resolve_universe("demo_small")))


@pytest.fixture
def ctx() -> AppContext:
    return AppContext()


def make(ctx: AppContext, name: str = "tr", **parameters: Any) -> None:
    pipelines_svc.create_pipeline(
        ctx,
        {
            "name": name,
            "kind": "training",
            "mode": "demo",
            "schedule": "1d",
            "error_policy": "skip",
            "parameters": {"end": TRAIN_END, **parameters},
        },
    )


def fetch_rest(ctx: AppContext) -> None:
    """The sample's sessions after the training range, as a later fetch would bring them."""
    provider = get_provider("sample", ctx.settings)
    for symbol in resolve_universe("demo_small"):
        fetch_symbol(ctx, provider, symbol, dt.date(2010, 7, 1), dt.date(2010, 8, 20))


# --- features and labels ---------------------------------------------------------------------


@pytest.mark.parametrize("cut", CUTS, ids=str)
def test_features_at_a_date_do_not_depend_on_later_bars(bars: pl.DataFrame, cut: dt.date) -> None:
    full = build_features(bars, hl_window=50).filter(pl.col("date") <= cut)
    truncated = build_features(bars.filter(pl.col("date") <= cut), hl_window=50)

    assert truncated["date"].max() == cut
    assert full.drop_nulls().height > 0
    assert_frame_equal(truncated, full, check_exact=True)


def test_the_label_is_the_forward_return_over_horizon_bars() -> None:
    days = [dt.date(2020, 1, d) for d in (1, 2, 3, 6)]
    frame = pl.DataFrame(
        {"symbol": ["A"] * 4 + ["B"] * 4, "date": days * 2,
         "close": [10.0, 11.0, 12.1, 9.0, 5.0, 5.0, 6.0, 3.0]}
    )  # fmt: skip

    labels = build_labels(frame, horizon=2).sort("symbol", "date")["label"].to_list()

    assert labels[:2] == pytest.approx([12.1 / 10 - 1, 9.0 / 11 - 1])
    assert labels[4:6] == pytest.approx([6.0 / 5 - 1, 3.0 / 5 - 1])
    assert labels[2] is None and labels[3] is None and labels[7] is None


def test_the_dataset_keeps_complete_rows_and_every_feature(bars: pl.DataFrame) -> None:
    data = build_dataset(bars, horizon=5, hl_window=50)

    assert data.columns == ["symbol", "date", *FEATURES, "label"]
    assert data.null_count().sum_horizontal().item() == 0
    # The last 5 sessions have no label yet.
    assert data["date"].max() < bars["date"].max()


def test_unknown_features_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown feature"):
        build_features(pl.DataFrame(), ["ret_1", "moon_phase"])


# --- folds -----------------------------------------------------------------------------------


def test_folds_are_in_time_order_with_a_gap_and_never_overlap() -> None:
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(200)]

    folds = walk_forward_folds(list(reversed(days)), n_folds=4, test_size=20, gap=5, min_train=50)

    assert [f.number for f in folds] == [1, 2, 3, 4]
    for fold in folds:
        assert fold.train_start == days[0] and fold.train_start <= fold.train_end
        assert days.index(fold.test_start) - days.index(fold.train_end) == 6  # 5 dates left out
        assert days.index(fold.test_end) - days.index(fold.test_start) == 19
    for earlier, later in itertools.pairwise(folds):
        assert days.index(later.test_start) == days.index(earlier.test_end) + 1
    assert folds[-1].test_end == days[-1]


def test_rolling_folds_keep_train_size_dates() -> None:
    days = list(range(100))
    folds = walk_forward_folds(days, n_folds=2, test_size=10, gap=3, min_train=20, train_size=30)
    assert [(f.train_start, f.train_end) for f in folds] == [(47, 76), (57, 86)]


def test_too_few_dates_for_the_folds_is_one_line() -> None:
    with pytest.raises(InvalidInputError, match="too few for 4 folds"):
        walk_forward_folds(list(range(50)), n_folds=4, test_size=10, gap=5, min_train=20)


def test_metrics_equal_a_hand_computation() -> None:
    d1, d2 = dt.date(2020, 1, 1), dt.date(2020, 1, 2)
    frame = pl.DataFrame(
        {"date": [d1] * 3 + [d2] * 3, "symbol": ["A", "B", "C"] * 2,
         "score": [0.1, 0.2, 0.3, 0.3, -0.1, 0.0], "label": [0.01, 0.03, 0.02, -0.02, 0.01, 0.04]}
    )  # fmt: skip

    m = evaluate_scores(frame)

    ic1 = np.corrcoef([0.1, 0.2, 0.3], [0.01, 0.03, 0.02])[0, 1]
    ic2 = np.corrcoef([0.3, -0.1, 0.0], [-0.02, 0.01, 0.04])[0, 1]
    assert m["ic"] == pytest.approx((ic1 + ic2) / 2)
    # Ranks: day 1 scores 1,2,3 vs labels 1,3,2 → 0.5; day 2 scores 3,1,2 vs labels 1,2,3 → -0.5
    assert m["rank_ic"] == pytest.approx(0.0)
    assert m["hit_rate"] == pytest.approx(3 / 6)  # signs agree on A, B, C of day 1 only
    assert m["mse"] == pytest.approx(
        np.mean((np.array([0.1, 0.2, 0.3, 0.3, -0.1, 0.0])
                 - np.array([0.01, 0.03, 0.02, -0.02, 0.01, 0.04])) ** 2)
    )  # fmt: skip
    assert m["long_short"] == pytest.approx(((0.02 - 0.01) + (-0.02 - 0.01)) / 2)


# --- the pipeline ----------------------------------------------------------------------------


def test_a_training_run_records_folds_and_registers_a_model(ctx: AppContext) -> None:
    make(ctx)
    outcome = pipelines_svc.run_now(ctx, "tr")

    assert outcome.status == "succeeded", outcome.error
    _, steps = pipelines_svc.run_detail(ctx, outcome.run_id)
    names = [s.name for s in steps]
    assert names == ["fetch", "dataset", "fold-1", "fold-2", "fold-3", "fold-4", "fit"]
    folds = [s.detail for s in steps if s.name.startswith("fold-")]
    assert all(f["n"] > 0 and f["ic"] is not None and f["mse"] is not None for f in folds)
    # The last training date of each fold is horizon (5) sessions before its test window.
    assert all(f["train_end"] < f["test_start"] for f in folds)

    model = models_svc.show_model(ctx, "tr")
    assert model.version == 1 and model.status == "candidate"
    assert model.features == list(FEATURES) and model.horizon == 5
    assert model.data_start == dt.date(2009, 8, 21) and model.data_end == dt.date(2010, 6, 30)
    assert [f["fold"] for f in model.folds] == [1, 2, 3, 4]
    assert model.metrics["folds"] == 4
    assert model.metrics["ic"] == pytest.approx(np.mean([f["ic"] for f in folds]))
    assert model.pipeline_run_id == outcome.run_id
    assert (ctx.settings.home / "models" / model.artifact).exists()


def test_a_restarted_run_skips_finished_folds(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(ctx)
    calls: list[int] = []
    real = training_mod.run_fold
    broken = {"fold": 3}

    def counting(dataset: Any, fold: Any, *args: Any) -> Any:
        calls.append(fold.number)
        if fold.number == broken["fold"]:
            raise RuntimeError("killed in fold 3")
        return real(dataset, fold, *args)

    monkeypatch.setattr(training_mod, "run_fold", counting)
    first = pipelines_svc.run_now(ctx, "tr")
    assert first.status == "failed" and "killed in fold 3" in (first.error or "")
    assert calls == [1, 2, 3]

    broken["fold"] = 0
    # The definition changes before the restart; the run keeps the range it started with.
    pipelines_svc.update_pipeline(ctx, "tr", {"parameters": {"end": "2010-07-30"}})
    fetch_rest(ctx)  # and newer bars arrived in the lake meanwhile
    repo = RunRepository(ctx.db)
    assert repo.requeue(first.run_id)
    stored = pipelines_svc.get_pipeline(ctx, "tr")
    second = pipelines_svc.lifecycle_for(ctx, stored, first.run_id, heartbeat_interval=0).run()

    assert second.status == "succeeded", second.error
    assert calls == [1, 2, 3, 3, 4]
    model = models_svc.show_model(ctx, "tr")
    assert model.version == 1 and model.data_end == dt.date(2010, 6, 30)
    assert model.folds[-1]["test_end"] < "2010-06-30"


def test_registry_round_trip_and_a_tampered_file_is_refused(ctx: AppContext) -> None:
    make(ctx)
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    meta, estimator = models_svc.load_model(ctx, "tr", 1)
    x = np.zeros((2, len(meta.features)))
    assert np.isfinite(estimator.predict(x)).all()

    path = ctx.settings.home / "models" / meta.artifact
    path.write_bytes(path.read_bytes() + b"\0")

    with pytest.raises(ConfigError, match="SHA-256"):
        models_svc.load_model(ctx, "tr", 1)


def test_an_artefact_path_outside_the_models_folder_is_refused(ctx: AppContext) -> None:
    make(ctx)
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    db = open_database(ctx.settings.resolved_database_url)
    with db.session() as session:
        row = session.query(ModelVersionRow).one()
        row.artifact = "../breadthflow.db"

    with pytest.raises(ConfigError, match="outside"):
        models_svc.load_model(ctx, "tr", 1)


def test_unknown_model_is_one_line(ctx: AppContext) -> None:
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        models_svc.show_model(ctx, "nope")


def test_promote_and_compare_two_versions_out_of_sample(ctx: AppContext) -> None:
    make(ctx)
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    pipelines_svc.update_pipeline(
        ctx, "tr", {"parameters": {"end": TRAIN_END, "estimator": "logistic"}}
    )
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    with pytest.raises(InvalidInputError, match="no bars after 2010-06-30"):
        models_svc.compare_models(ctx, "tr", 1, 2)
    fetch_rest(ctx)

    result = models_svc.compare_models(ctx, "tr", 1, 2)

    assert result["out_of_sample"] is True
    assert result["start"] == dt.date(2010, 7, 1) and result["end"] == dt.date(2010, 8, 20)
    assert result["rows"] > 100
    assert result["a"]["metrics"]["n"] == result["b"]["metrics"]["n"] == result["rows"]
    assert result["a"]["metrics"]["mse"] is not None
    assert result["b"]["metrics"]["accuracy"] is not None
    assert result["winner"] in (1, 2)

    assert models_svc.promote_model(ctx, "tr", 2).status == "production"
    assert models_svc.show_model(ctx, "tr").version == 2  # production is the default
    models_svc.promote_model(ctx, "tr", 1)
    statuses = {m.version: m.status for m in models_svc.list_models(ctx, "tr")}
    assert statuses == {1: "production", 2: "archived"}


def test_model_prediction_turns_a_model_into_causal_signals(
    ctx: AppContext, bars: pl.DataFrame
) -> None:
    make(ctx)
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    fetch_rest(ctx)

    batch = generate_signals(
        ctx, "model_prediction", "2010-07-01", "2010-08-20", universe="demo_small",
        params={"model": "tr"}, hl_window=50,
    )  # fmt: skip

    assert batch.stored > 0 and batch.counts["BUY"] + batch.counts["SELL"] == batch.stored
    assert {s.factors["model"] for s in batch.latest} == {"tr"}

    strategy = build_strategy("model_prediction", {"model": "tr", "version": 1})
    data = MarketData(bars, "demo_small", 50)
    cut = dt.date(2010, 7, 30)
    full = strategy.generate(data).filter(pl.col("date") <= cut)
    known_then = strategy.generate(data.truncated(cut))
    # Features are equal bit for bit (above); a matrix product over fewer rows may round
    # differently in the last place, so scores are compared to 1e-9.
    assert known_then["signal_type"].to_list() == full["signal_type"].to_list()
    assert_frame_equal(known_then, full, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def test_model_prediction_without_a_model_emits_nothing(bars: pl.DataFrame) -> None:
    frame = build_strategy("model_prediction").generate(MarketData(bars, "demo_small", 50))
    assert frame.is_empty()


def test_a_bad_estimator_is_refused_before_any_work(ctx: AppContext) -> None:
    make(ctx, estimator="forest")
    outcome = pipelines_svc.run_now(ctx, "tr")
    assert outcome.status == "failed"
    assert "unknown estimator 'forest'" in (outcome.error or "")
    _, steps = pipelines_svc.run_detail(ctx, outcome.run_id)
    assert steps == []


def test_registry_versions_promotion_and_hash_check_on_each_database(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import Ridge

    monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", db_url)
    get_settings.cache_clear()
    ctx = AppContext()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=50)
    meta = {
        "estimator": "ridge", "task": "regression", "params": {"alpha": 1.0},
        "features": ["ret_1", "ret_5"], "horizon": 5, "universe": "u", "symbols": ["A"],
        "data_start": dt.date(2010, 1, 4), "data_end": dt.date(2010, 6, 30), "folds": [],
        "metrics": {"rank_ic": 0.1}, "pipeline_run_id": "",
    }  # fmt: skip
    first = models_svc.save_model(ctx, "m", Ridge().fit(x, y), meta)
    second = models_svc.save_model(ctx, "m", Ridge(alpha=5.0).fit(x, y), meta)
    assert (first.version, second.version) == (1, 2)

    _, loaded = models_svc.load_model(ctx, "m", 2)
    assert loaded.alpha == 5.0
    assert np.allclose(loaded.predict(x), Ridge(alpha=5.0).fit(x, y).predict(x))
    models_svc.promote_model(ctx, "m", 2)
    models_svc.promote_model(ctx, "m", 1)
    assert [(m.version, m.status) for m in models_svc.list_models(ctx)] == [
        (2, "archived"), (1, "production"),
    ]  # fmt: skip

    path = ctx.settings.home / "models" / second.artifact
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="refusing to load it"):
        models_svc.load_model(ctx, "m", 2)
    with pytest.raises(ConfigError, match="SHA-256"):
        models_svc.promote_model(ctx, "m", 2)  # a broken version is never promoted


def test_a_paper_pipeline_trades_a_models_predictions(ctx: AppContext) -> None:
    make(ctx)
    assert pipelines_svc.run_now(ctx, "tr").status == "succeeded"
    pipelines_svc.create_pipeline(
        ctx,
        {"name": "pp", "kind": "paper", "mode": "demo", "schedule": "5m",
         "parameters": {"start": "2010-07-01", "max_bars_per_run": 20,
                        "strategy": "model_prediction", "strategy_params": {"model": "tr"}}},
    )  # fmt: skip

    outcome = pipelines_svc.run_now(ctx, "pp")

    assert outcome.status == "succeeded", outcome.error
    assert outcome.signals_generated > 0
    orders = paper_svc.orders(ctx, "pp", limit=1000)
    assert orders and {o.reason for o in orders} == {"model_prediction"}
    assert all(o.signal_date >= dt.date(2010, 7, 1) for o in orders)
