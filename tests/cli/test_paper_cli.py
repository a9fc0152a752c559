"""`breadthflow paper …`: the account, orders and positions of a paper pipeline."""

from __future__ import annotations

import json

import pytest

from tests.cli._run import assert_one_line_error, run_cli


def as_json(result):
    assert result.code == 0, result.err
    return json.loads(result.out)


@pytest.fixture
def traded(capsys) -> None:
    """A demo paper pipeline (sma_cross on demo_small) run twice, 20 sessions each."""
    result = run_cli(
        capsys, "pipeline", "create", "pp", "--kind", "paper", "--mode", "demo",
        "--schedule", "5m", "-p", "max_bars_per_run=20",
    )  # fmt: skip
    assert result.code == 0, result.err
    for _ in range(2):
        assert as_json(run_cli(capsys, "pipeline", "run", "pp", "--format", "json"))["status"] == (
            "succeeded"
        )


def test_account_orders_and_positions_agree(capsys, traded):
    account = as_json(run_cli(capsys, "paper", "account", "pp", "--format", "json"))
    orders = as_json(run_cli(capsys, "paper", "orders", "pp", "--format", "json",
                             "--limit", "1000"))  # fmt: skip
    positions = as_json(run_cli(capsys, "paper", "positions", "pp", "--format", "json"))
    fills = as_json(run_cli(capsys, "paper", "fills", "pp", "--format", "json"))

    assert account["last_bar_date"] == "2010-07-27" and account["broker"] == "simulated"
    assert account["open_positions"] == len(positions)
    assert account["pending_orders"] == sum(o["status"] == "pending" for o in orders)
    assert len(fills) == sum(o["status"] == "filled" for o in orders) > 0
    value = sum(p["quantity"] * p["last_price"] for p in positions)
    assert account["equity"] == pytest.approx(account["cash"] + value)
    assert account["total_pnl"] == pytest.approx(
        account["realized_pnl"] + account["unrealized_pnl"]
    )
    held = {}
    for f in fills:
        held[f["symbol"]] = held.get(f["symbol"], 0) + (f["quantity"] if f["side"] == "BUY"
                                                        else -f["quantity"])  # fmt: skip
    assert {s: q for s, q in held.items() if q} == {p["symbol"]: p["quantity"] for p in positions}


def test_without_a_pipeline_every_account_is_listed(capsys, traded):
    rows = as_json(run_cli(capsys, "paper", "account", "--format", "json"))
    assert [r["name"] for r in rows] == ["pp"]
    table = run_cli(capsys, "paper", "orders", "--status", "filled")
    assert table.code == 0 and "Paper orders" in table.out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("account", "nope"), ("no paper account 'nope'",)),
        (("orders", "nope"), ("no paper account 'nope'",)),
        (("orders", "--status", "open"), ("unknown order status 'open'",)),
        (("positions", "nope"), ("no paper account 'nope'",)),
    ],
)
def test_bad_input_is_one_line(capsys, args, fragments):
    assert_one_line_error(run_cli(capsys, "paper", *args), *fragments)
