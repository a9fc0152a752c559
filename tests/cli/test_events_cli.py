"""`breadthflow events …` end to end through the console entry point."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest

from breadthflow.services import events as svc
from breadthflow.services.context import AppContext
from breadthflow.store.signals import SignalRepository
from tests.cli._run import assert_one_line_error, run_cli
from tests.conftest import missing_service

WEEK = ("--start", "2010-01-04", "--end", "2010-01-08")


def events(capsys, *args: str):
    return run_cli(capsys, "events", *args)


def tail_json(capsys, topic: str, *args: str) -> list[dict]:
    result = events(capsys, "tail", topic, "--format", "json", "--idle-timeout", "1", *args)
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines() if line.strip()]


def test_publish_then_tail_from_the_beginning(capsys):
    first = events(capsys, "publish", "pipeline-events", '{"type": "run.queued", "data": {"x": 1}}')
    second = events(capsys, "publish", "pipeline-events", '{"note": "plain objects become data"}')
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert "published 1 event(s) to pipeline-events" in first.out

    got = tail_json(capsys, "pipeline-events", "--from-beginning", "--limit", "5")

    assert [m["event"]["type"] for m in got] == ["run.queued", "pipeline-events"]
    assert got[0]["event"]["data"] == {"x": 1}
    assert got[1]["event"]["data"] == {"note": "plain objects become data"}
    assert got[1]["event"]["source"] == "breadthflow.cli"


def test_tail_without_from_beginning_shows_only_new_messages(capsys):
    events(capsys, "publish", "market-data", '{"type": "bar", "data": {"n": 1}}')

    assert tail_json(capsys, "market-data") == []


def test_publish_reads_one_message_per_stdin_line(capsys, monkeypatch):
    lines = (
        '{"tickers": [{"ticker": "aapl", "signal": "buy", "confidence": 85}]}\n'
        "\n"
        '{"tickers": [{"ticker": "MSFT", "signal": "BEARISH", "confidence": 60}]}\n'
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))

    result = events(capsys, "publish", "trading-signals", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["published"] == 2
    got = tail_json(capsys, "trading-signals", "--from-beginning")
    assert [m["event"]["data"]["tickers"][0]["ticker"] for m in got] == ["AAPL", "MSFT"]
    assert got[0]["event"]["data"]["tickers"][0]["signal"] == "BULLISH"


def test_a_bad_line_publishes_nothing_and_names_the_line(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"type": "a", "data": {}}\n{not json}\n'))

    result = events(capsys, "publish", "pipeline-events")

    assert_one_line_error(result, "line 2", "invalid JSON")
    assert tail_json(capsys, "pipeline-events", "--from-beginning") == []


@pytest.mark.parametrize(
    ("topic", "message", "fragments"),
    [
        ("trading-signals", '{"tickers": [{"ticker": "AAPL", "signal": "UP", "confidence": 5}]}',
         ("'UP'", "BULLISH, BEARISH or NEUTRAL")),
        ("trading-signals", '{"tickers": [{"ticker": "AAPL", "signal": "BUY", "confidence": 150}]}',
         ("confidence", "100")),
        ("trading-signals", '{"tickers": [{"ticker": "../x", "signal": "BUY", "confidence": 1}]}',
         ("invalid symbol '../x'",)),
        ("Bad Topic", '{"a": 1}', ("invalid topic 'Bad Topic'",)),
        ("pipeline-events", "[1, 2]", ("expected a JSON object",)),
        ("pipeline-events", '{"type": "x", "data": {}, "time": "2024-01-01T00:00:00"}',
         ("UTC offset",)),
    ],
)  # fmt: skip
def test_invalid_messages_are_refused_in_one_line(capsys, topic, message, fragments):
    assert_one_line_error(events(capsys, "publish", topic, message), *fragments)


def test_a_group_resumes_where_it_acknowledged_and_lag_shows_the_rest(capsys):
    for n in range(3):
        events(capsys, "publish", "backtest-results", json.dumps({"n": n}))

    first = tail_json(
        capsys, "backtest-results", "--group", "reports", "--from-beginning", "--limit", "1"
    )
    table = events(capsys, "lag")
    rows = json.loads(events(capsys, "lag", "--group", "reports", "--format", "json").out)
    rest = tail_json(capsys, "backtest-results", "--group", "reports")  # resumes: not "latest"

    assert [m["event"]["data"]["n"] for m in first] == [0]
    assert rows == [{"topic": "backtest-results", "group": "reports", "lag": 2}]
    assert "reports" in table.out and "backtest-results" in table.out
    assert [m["event"]["data"]["n"] for m in rest] == [1, 2]
    assert (
        json.loads(events(capsys, "lag", "--group", "reports", "--format", "json").out)[0]["lag"]
        == 0
    )


def test_tail_refuses_csv(capsys):
    assert_one_line_error(events(capsys, "tail", "market-data", "--format", "csv"), "table or json")


def test_lag_of_an_unknown_group_is_an_error(capsys):
    assert_one_line_error(events(capsys, "lag", "--group", "nobody"), "no consumer group 'nobody'")


def test_an_unknown_bus_url_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", "carrier-pigeon://coop")

    result = events(capsys, "publish", "market-data", '{"a": 1}')

    assert_one_line_error(result, "unsupported bus URL 'carrier-pigeon://coop'", "redis")


# --- replay ---------------------------------------------------------------------------------


@pytest.fixture
def week(capsys) -> None:
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--symbols", "AAPL,MSFT", *WEEK,
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err


def test_replay_publishes_stored_bars_in_time_order(capsys, week):
    result = events(capsys, "replay", "--symbols", "AAPL,MSFT", *WEEK, "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)

    got = tail_json(capsys, "market-data", "--from-beginning")
    # The fetch that stored the week announced itself first (bars.ingested).
    assert [m["event"]["type"] for m in got[:1]] == ["bars.ingested"]
    bars = [m["event"]["data"] for m in got if m["event"]["type"] == "bar"]
    assert report["bars"] == len(bars) == len(got) - 1 == 10 and report["timestamps"] == 5
    assert [(b["date"], b["symbol"]) for b in bars] == sorted(
        (b["date"], b["symbol"]) for b in bars
    )
    assert {b["date"] for b in bars} == {f"2010-01-0{d}" for d in range(4, 9)}
    lake = AppContext().lake.read(
        ["AAPL", "MSFT"], start=dt.date(2010, 1, 4), end=dt.date(2010, 1, 8)
    )
    expected = {
        (r["symbol"], r["date"].isoformat()): r["close"] for r in lake.iter_rows(named=True)
    }
    assert {(b["symbol"], b["date"]): b["close"] for b in bars} == expected


def test_replay_waits_the_scaled_gap_between_timestamps(capsys, week):
    waits: list[float] = []
    report = svc.replay(
        AppContext(), "2010-01-04", "2010-01-08", "AAPL,MSFT", speed="86400x", sleep=waits.append
    )

    assert report.speed == 86400 and report.bars == 10
    assert waits == pytest.approx([1.0, 1.0, 1.0, 1.0])  # one trading day apart each


def test_replay_across_a_weekend_waits_three_days(capsys):
    result = run_cli(
        capsys, "data", "fetch", "--provider", "sample", "--symbols", "AAPL",
        "--start", "2010-01-07", "--end", "2010-01-11", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    waits: list[float] = []

    svc.replay(AppContext(), "2010-01-07", "2010-01-11", "AAPL", speed="60x", sleep=waits.append)

    assert waits == pytest.approx([86400 / 60, 3 * 86400 / 60])


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--symbols", "AAPL", *WEEK, "--speed", "fast"), ("invalid speed 'fast'", "60x")),
        (("--symbols", "AAPL", *WEEK), ("no stored 1d bars", "data fetch")),
        (("--symbols", "AAPL", "--universe", "dow30", *WEEK), ("exactly one",)),
        (("--symbols", "AAPL", "--start", "2010-01-08", "--end", "2010-01-04"), ("swap",)),
    ],
)
def test_replay_refuses_bad_input_in_one_line(capsys, args, fragments):
    assert_one_line_error(events(capsys, "replay", *args), *fragments)


# --- an external bus: the outbox relay ------------------------------------------------------


def test_stored_signals_reach_redis_through_the_relay(capsys, monkeypatch):
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis not reachable at 127.0.0.1:6379: {exc}")
    prefix = f"bft{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", f"redis://127.0.0.1:6379/0?prefix={prefix}")
    day = dt.date(2024, 3, 4)
    try:
        SignalRepository(AppContext().db).replace(
            [{"symbol": "AAPL", "date": day, "signal_type": "BUY", "confidence": 0.9}],
            strategy="rsi", timeframe="1d", start=day, end=day, symbols=["AAPL"],
        )  # fmt: skip
        assert tail_json(capsys, "trading-signals", "--from-beginning") == []  # not relayed yet

        relayed = events(capsys, "relay", "--once", "--format", "json")
        again = events(capsys, "relay", "--once", "--format", "json")
        got = tail_json(capsys, "trading-signals", "--from-beginning")

        assert json.loads(relayed.out) == {"relayed": 1}
        assert json.loads(again.out) == {"relayed": 0}
        [message] = got
        assert message["event"]["data"]["tickers"][0]["ticker"] == "AAPL"
        assert message["event"]["data"]["tickers"][0]["confidence"] == 90.0
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_relay_refuses_the_embedded_bus(capsys):
    assert_one_line_error(events(capsys, "relay", "--once"), "nothing to relay")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "nats://127.0.0.1:1"])
def test_an_unreachable_bus_is_one_line_after_retrying(capsys, monkeypatch, url):
    monkeypatch.setenv("BREADTHFLOW_BUS_URL", url)

    result = events(capsys, "publish", "market-data", '{"a": 1}')

    assert_one_line_error(result, "unreachable")
    assert result.code == 4


def test_prune_deletes_old_events_and_their_pending_deliveries(capsys):
    from sqlalchemy import func, select, update

    from breadthflow.store.models import BusEventRow, BusPendingRow

    for n in range(3):
        events(capsys, "publish", "market-data", json.dumps({"n": n}))
    tail_json(capsys, "market-data", "--group", "slow", "--from-beginning", "--limit", "1")
    db = AppContext().db
    with db.session() as session:  # the first two were recorded in 2020
        first_two = select(BusEventRow.seq).order_by(BusEventRow.seq).limit(2).scalar_subquery()
        session.execute(
            update(BusEventRow)
            .where(BusEventRow.seq.in_(first_two))
            .values(created_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        )

    result = events(capsys, "prune", "--before", "2021-01-01", "--format", "json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"deleted": 2}
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(BusEventRow)) == 1
        assert session.scalar(select(func.count()).select_from(BusPendingRow)) == 0
    assert [
        m["event"]["data"]["n"] for m in tail_json(capsys, "market-data", "--group", "slow")
    ] == [2]
    assert_one_line_error(events(capsys, "prune", "--before", "someday"), "someday")
