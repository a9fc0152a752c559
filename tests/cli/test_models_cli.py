"""`breadthflow models …`: list, show, promote and compare trained versions."""

from __future__ import annotations

import json

import pytest

from tests.cli._run import assert_one_line_error, run_cli


def as_json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.fixture
def trained(capsys) -> None:
    """Two versions of model `tr` (ridge, then logistic), trained to 2010-06-30; then the
    rest of the sample fetched, so 2010-07-01 → 2010-08-20 is out of sample for both."""
    result = run_cli(
        capsys, "pipeline", "create", "tr", "--kind", "training", "--mode", "demo",
        "--schedule", "1d", "-p", "end=2010-06-30", "-p", "n_folds=2",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert as_json(run_cli(capsys, "pipeline", "run", "tr", "--format", "json"))["status"] == (
        "succeeded"
    )
    result = run_cli(capsys, "pipeline", "update", "tr", "-p", "end=2010-06-30",
                     "-p", "n_folds=2", "-p", "estimator=logistic")  # fmt: skip
    assert result.code == 0, result.err
    assert run_cli(capsys, "pipeline", "run", "tr").code == 0
    fetched = run_cli(capsys, "data", "fetch", "--universe", "demo_small", "--provider", "sample",
                      "--start", "2010-07-01", "--end", "2010-08-20")  # fmt: skip
    assert fetched.code == 0, fetched.err


def test_list_and_show_versions_with_their_metadata(capsys, trained):
    rows = as_json(run_cli(capsys, "models", "list", "--format", "json"))
    assert [(r["name"], r["version"], r["estimator"]) for r in rows] == [
        ("tr", 2, "logistic"), ("tr", 1, "ridge"),
    ]  # fmt: skip
    assert all(r["status"] == "candidate" and r["rank_ic"] is not None for r in rows)

    shown = as_json(run_cli(capsys, "models", "show", "tr", "1", "--format", "json"))
    assert shown["horizon"] == 5 and len(shown["folds"]) == 2
    assert shown["data_end"] == "2010-06-30" and len(shown["sha256"]) == 64
    assert shown["sklearn_version"] and "b_mcclellan_ratio" in shown["features"]

    table = run_cli(capsys, "models", "show", "tr")
    assert table.code == 0 and "Walk-forward folds" in table.out and "Model tr v2" in table.out


def test_promote_then_compare_out_of_sample(capsys, trained):
    promoted = as_json(run_cli(capsys, "models", "promote", "tr", "1", "--format", "json"))
    assert promoted["status"] == "production"
    assert as_json(run_cli(capsys, "models", "show", "tr", "--format", "json"))["version"] == 1

    result = as_json(run_cli(capsys, "models", "compare", "tr", "1", "2", "--format", "json"))
    assert result["start"] == "2010-07-01" and result["end"] == "2010-08-20"
    assert result["out_of_sample"] is True and result["rows"] > 100
    assert result["a"]["status"] == "production" and result["winner"] in (1, 2)
    table = run_cli(capsys, "models", "compare", "tr", "1", "2")
    assert table.code == 0 and "winner on rank IC" in table.out


def test_signals_generate_uses_the_production_model(capsys, trained):
    assert run_cli(capsys, "models", "promote", "tr", "2").code == 0
    batch = as_json(run_cli(
        capsys, "signals", "generate", "--strategy", "model_prediction", "-p", "model=tr",
        "--universe", "demo_small", "--start", "2010-07-01", "--end", "2010-08-20",
        "--format", "json",
    ))  # fmt: skip
    assert batch["stored"] > 0
    assert {s["factors"]["version"] for s in batch["latest"]} == {2}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("show", "nope"), ("no model 'nope'",)),
        (("show", "Bad Name"), ("invalid model name 'Bad Name'",)),
        (("promote", "nope", "1"), ("no model 'nope' version 1",)),
        (("compare", "nope", "1", "2"), ("no model 'nope'",)),
    ],
)
def test_bad_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(run_cli(capsys, "models", *args), *fragments)


def test_list_is_empty_before_training(capsys):
    assert as_json(run_cli(capsys, "models", "list", "--format", "json")) == []
