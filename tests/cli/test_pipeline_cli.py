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
    (listed,) = as_json(pipeline(capsys, "runs", "--format", "json"))
    assert listed["cpu_s"] == run["cpu_seconds"] and listed["cpu_s"] > 0
    assert listed["peak_mb"] == run["peak_memory_mb"] > 50


def test_a_runs_fetch_step_leaves_the_lakes_read_snapshot_fresh(capsys, small, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_LAKE_SNAPSHOT_MIN_SYMBOLS", "4")
    run = as_json(pipeline(capsys, "run", "small", "--format", "json"))
    assert run["status"] == "succeeded"
    status = as_json(run_cli(capsys, "data", "snapshot", "--status", "--format", "json"))
    assert (status["usable"], status["symbols"], status["fresh"], status["stale"]) == (
        True, 8, 8, 0,
    )  # fmt: skip


def test_a_second_run_fetches_and_stores_only_what_is_new(capsys, small):
    first = as_json(pipeline(capsys, "run", "small", "--format", "json"))
    second = as_json(pipeline(capsys, "run", "small", "--format", "json"))

    fetched = {s["name"]: s["detail"] for s in second["steps"]}["fetch"]
    assert fetched["done"] == 8
    assert first["signals_generated"] > 0
    # The sample ends on 2010-08-20: nothing newer, so no signal is stored twice.
    assert second["signals_generated"] == 0
    made = {s["name"]: s["detail"] for s in second["steps"]}["signals"]["strategies"]
    assert made == {"breadth_composite": {"stored": 0, "from": None}}
    every = as_json(run_cli(capsys, "signals", "list", "--strategy", "breadth_composite",
                            "--limit", "100000", "--format", "json"))  # fmt: skip
    assert len(every) == first["signals_generated"]
    assert len({(s["symbol"], s["date"]) for s in every}) == len(every)


def test_status_shows_each_pipeline_and_the_runner(capsys, small):
    pipeline(capsys, "run", "small")
    status = as_json(pipeline(capsys, "status", "--format", "json"))
    assert status["runner"] == {"pid": None, "alive": False}
    (row,) = status["pipelines"]
    assert row["name"] == "small" and row["last_status"] == "succeeded"


def test_status_and_logs_work_on_postgresql(capsys, postgres_url, monkeypatch, isolated_home):
    monkeypatch.setenv("BREADTHFLOW_DATABASE_URL", postgres_url)
    created = pipeline(
        capsys, "create", "pg", "--mode", "custom_symbols", "--universe", "demo_small",
        "--provider", "sample", "--schedule", "1h", "-p", "start=2010-01-04",
        "-p", "end=2010-08-20", "-p", "hl_window=50", "-p", 'strategies=["zweig_thrust"]',
    )  # fmt: skip
    assert created.code == 0, created.err
    run = as_json(pipeline(capsys, "run", "pg", "--format", "json"))

    status = as_json(pipeline(capsys, "status", "--format", "json"))
    assert status["runner"] == {"pid": None, "alive": False}
    (row,) = status["pipelines"]
    assert row["name"] == "pg" and row["last_run"] == run["run_id"]
    assert row["last_status"] == "succeeded" and row["last_duration_s"] > 0
    assert row["next_run_at"] is not None
    table = pipeline(capsys, "status")
    assert table.code == 0 and "runner: not running" in table.out
    for args in (("logs", run["run_id"]), ("logs", "--pipeline", "pg", "--follow")):
        logs = pipeline(capsys, *args)
        assert logs.code == 0, logs.err
        assert "[backtest] step backtest succeeded" in logs.out
        assert "run of pipeline pg started (attempt 1" in logs.out

    # It all went to PostgreSQL, not to a SQLite file in the home folder.
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            steps = connection.execute(
                sa.text("SELECT count(*) FROM run_steps WHERE run_id = :r"), {"r": run["run_id"]}
            ).scalar()
    finally:
        engine.dispose()
    assert steps == 4
    assert not (isolated_home / "breadthflow.db").exists()


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
