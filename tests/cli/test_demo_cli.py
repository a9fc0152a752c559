"""`breadthflow demo`: the main job on the bundled sample, end to end."""

from __future__ import annotations

import json

from breadthflow.signals import STRATEGIES
from tests.cli._run import assert_one_line_error, run_cli


def test_demo_loads_measures_and_signals(capsys):
    result = run_cli(capsys, "demo", "--universe", "demo_medium", "--format", "json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["fetch"]["symbols_stored"] == 20
    assert report["breadth_latest"]["date"] == "2010-08-20"
    assert report["breadth_latest"]["advances"] + report["breadth_latest"]["declines"] <= 20
    by_name = {row["strategy"]: row for row in report["signals"]}
    assert set(by_name) == set(STRATEGIES)
    assert all(row["stored"] == row["BUY"] + row["SELL"] + row["HOLD"] for row in by_name.values())
    assert by_name["breadth_composite"]["HOLD"] > 0


def test_demo_twice_stores_the_same_signals(capsys):
    first = run_cli(capsys, "demo", "--universe", "demo_small", "--format", "json")
    second = run_cli(capsys, "demo", "--universe", "demo_small", "--format", "json")

    assert first.code == second.code == 0, second.err
    assert json.loads(first.out)["signals"] == json.loads(second.out)["signals"]
    summary = json.loads(run_cli(capsys, "signals", "summary", "--format", "json").out)
    stored = {row["strategy"]: row["signals"] for row in summary}
    assert stored == {row["strategy"]: row["stored"] for row in json.loads(first.out)["signals"]
                      if row["stored"]}  # fmt: skip


def test_demo_table_output_names_the_next_steps(capsys):
    result = run_cli(capsys, "demo", "--universe", "demo_small")

    assert result.code == 0, result.err
    assert "Breadth of demo_small" in result.out and "breadth_composite" in result.out
    assert "breadthflow signals list" in result.err


def test_demo_with_an_unknown_universe_is_one_line(capsys):
    assert_one_line_error(run_cli(capsys, "demo", "--universe", "sp5000"), "sp5000")
