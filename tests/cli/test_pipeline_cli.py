"""`breadthflow pipeline …`: definitions, a foreground run with its steps, logs, status."""

from __future__ import annotations

import json

import pytest

from tests.cli._run import assert_one_line_error, run_cli


def pipeline(capsys, *args: str):
    return run_cli(capsys, "pipeline", *args)


def as_json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.fixture
def small(capsys) -> None:
    """A breadth pipeline over 8 sample symbols, the sample year, a 50-day high/low window."""
    result = pipeline(
        capsys, "create", "small", "--mode", "custom_symbols", "--universe", "demo_small",
        "--provider", "sample", "--schedule", "1h", "-p", "start=2009-08-21",
        "-p", "end=2010-08-20", "-p", "hl_window=50", "-p", 'strategies=["breadth_composite"]',
    )  # fmt: skip
    assert result.code == 0, result.err


def test_definitions_round_trip(capsys, small):
    shown = as_json(pipeline(capsys, "show", "small", "--format", "json"))
    assert shown["universe"] == "demo_small" and shown["parameters"]["hl_window"] == 50
    assert shown["next_run_at"] is not None and shown["runs"] == []

    as_json(pipeline(capsys, "update", "small", "--schedule", "15m", "--format", "json"))
    assert as_json(pipeline(capsys, "list", "--format", "json"))[0]["schedule"] == "15m"
    assert pipeline(capsys, "disable", "small").code == 0
    listed = as_json(pipeline(capsys, "list", "--format", "json"))[0]
    assert listed["active"] is False and listed["next_run_at"] is None
    assert pipeline(capsys, "enable", "small").code == 0
    assert pipeline(capsys, "delete", "small").code == 0
    assert as_json(pipeline(capsys, "list", "--format", "json")) == []


def test_a_run_records_its_steps_counts_and_logs(capsys, small):
    run = as_json(pipeline(capsys, "run", "small", "--format", "json"))

    assert run["status"] == "succeeded" and run["trigger"] == "manual"
    assert [s["name"] for s in run["steps"]] == ["fetch", "breadth", "signals", "backtest"]
    assert all(s["status"] == "succeeded" and s["duration"] is not None for s in run["steps"])
    assert run["symbols_processed"] == 8 and run["signals_generated"] > 0
    assert run["duration"] > 0 and run["peak_memory_mb"] > 0
    assert run["backtest_results"]["backtest_id"] >= 1
    signals = as_json(run_cli(capsys, "signals", "list", "--run-id", run["run_id"],
                              "--limit", "1000", "--format", "json"))  # fmt: skip
    assert len(signals) == run["signals_generated"]
    logs = pipeline(capsys, "logs", run["run_id"])
    assert "step backtest succeeded" in logs.out


def test_a_second_run_fetches_only_new_bars(capsys, small):
    first = as_json(pipeline(capsys, "run", "small", "--format", "json"))
    second = as_json(pipeline(capsys, "run", "small", "--format", "json"))

    fetched = {s["name"]: s["detail"] for s in second["steps"]}["fetch"]
    assert fetched["done"] == 8
    assert first["signals_generated"] == second["signals_generated"]


def test_status_shows_each_pipeline_and_the_runner(capsys, small):
    pipeline(capsys, "run", "small")
    status = as_json(pipeline(capsys, "status", "--format", "json"))
    assert status["runner"] == {"pid": None, "alive": False}
    (row,) = status["pipelines"]
    assert row["name"] == "small" and row["last_status"] == "succeeded"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("create", "x", "--schedule", "every day"), ("invalid schedule 'every day'",)),
        (("create", "x", "--schedule", "0 9 * * *", "--timezone", "Mars/Base"), ("Mars/Base",)),
        (("create", "Bad Name"), ("name='Bad Name'",)),
        (("create", "x", "--kind", "ml"), ("kind='ml'",)),
        (("create", "x", "--mode", "custom_symbols"), ("needs symbols or a universe",)),
        (("create", "x", "--param", "nonsense"), ("--param 'nonsense'",)),
        (("show", "nope"), ("unknown pipeline 'nope'",)),
        (("run", "nope"), ("unknown pipeline 'nope'",)),
        (("update", "nope", "--schedule", "5m"), ("unknown pipeline 'nope'",)),
        (("logs",), ("no runs yet",)),
        (("start", "--mode", "live"), ("--mode 'live'",)),
    ],
)
def test_bad_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(pipeline(capsys, *args), *fragments)


def test_duplicate_names_are_refused(capsys, small):
    result = pipeline(capsys, "create", "small")
    assert_one_line_error(result, "'small' already exists")
