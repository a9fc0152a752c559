"""`breadthflow alerts`: a failed run's alert listed, acknowledged; bad input is one line."""

from __future__ import annotations

import json

import pytest

from tests.cli._run import assert_one_line_error, run_cli


def as_json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.fixture
def failed_run(capsys) -> str:
    """A pipeline whose symbols do not exist, run once: it fails."""
    created = run_cli(
        capsys, "pipeline", "create", "broken", "--mode", "custom_symbols",
        "--symbols", "NOPE1,NOPE2", "--provider", "sample", "--schedule", "1d",
        "--error-policy", "skip",
    )  # fmt: skip
    assert created.code == 0, created.err
    run = run_cli(capsys, "pipeline", "run", "broken", "--format", "json")
    assert run.code == 1
    return json.loads(run.out)["run_id"]


def test_a_failed_run_raises_an_alert_until_it_is_acknowledged(capsys, failed_run):
    (alert,) = as_json(run_cli(capsys, "alerts", "--format", "json"))
    assert alert["pipeline"] == "broken" and alert["rule"] == "run_failed"
    assert alert["severity"] == "critical" and alert["run_id"] == failed_run
    assert alert["message"].startswith(f"run {failed_run} failed (attempt 1): ")
    assert alert["acknowledged_at"] is None
    table = run_cli(capsys, "alerts", "list", "--pipeline", "broken")
    assert "Open alerts" in table.out and "broken" in table.out and "critical" in table.out

    status = as_json(run_cli(capsys, "pipeline", "status", "--format", "json"))
    assert status["pipelines"][0]["open_alerts"] == 1
    assert "1 open alert(s)" in run_cli(capsys, "pipeline", "status").out

    acked = run_cli(capsys, "alerts", "ack", str(alert["id"]))
    assert acked.code == 0 and f"acknowledged alert {alert['id']} (run_failed)" in acked.out
    again = run_cli(capsys, "alerts", "ack", str(alert["id"]))
    assert again.code == 0 and "was already acknowledged" in again.out
    assert "no open alerts" in run_cli(capsys, "alerts").out
    status = as_json(run_cli(capsys, "pipeline", "status", "--format", "json"))
    assert status["pipelines"][0]["open_alerts"] == 0
    (shown,) = as_json(run_cli(capsys, "alerts", "list", "--all", "--format", "json"))
    assert shown["id"] == alert["id"] and shown["acknowledged_at"] is not None


def test_ack_all_acknowledges_every_open_alert_of_a_pipeline(capsys, failed_run):
    run_cli(capsys, "alerts", "ack", "--all")
    # Acknowledged: the next failure of the pipeline fires again.
    assert run_cli(capsys, "pipeline", "run", "broken").code == 1
    assert len(as_json(run_cli(capsys, "alerts", "--format", "json"))) == 1
    done = run_cli(capsys, "alerts", "ack", "--all", "--pipeline", "broken")
    assert done.code == 0 and "acknowledged 1 alert(s)" in done.out
    assert as_json(run_cli(capsys, "alerts", "--format", "json")) == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("alerts", "ack"), ("give an alert id or --all",)),
        (("alerts", "ack", "3", "--all"), ("give an alert id or --all",)),
        (("alerts", "ack", "x"), ("invalid alert id 'x'",)),
        (("alerts", "ack", "999"), ("no alert 999",)),
        (("alerts", "ack", "1", "--pipeline", "p"), ("--pipeline goes with --all",)),
        (("alerts", "--pipeline", "nope"), ("unknown pipeline 'nope'",)),
        (("alerts", "list", "--limit", "0"), ("invalid limit 0",)),
        (
            ("pipeline", "create", "x", "-p", 'alerts={"late_intervals": 0}'),
            ("alerts.late_intervals=0",),
        ),
        (
            ("pipeline", "create", "x", "-p", 'alerts={"rules": ["slow"]}'),
            ("unknown alert rule 'slow'",),
        ),
    ],
)
def test_bad_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(run_cli(capsys, *args), *fragments)
