"""The envelope, topic names and the trading-signals shape (pure, no server)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breadthflow.bus import Event, dlq_topic, make_event, parse_event, validate_topic
from breadthflow.bus._base import split_url
from breadthflow.core.errors import InvalidInputError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_an_event_survives_the_wire_unchanged() -> None:
    event = Event(type="run.succeeded", source="tests", data={"run_id": "r1", "n": [1, 2.5]})

    assert parse_event("pipeline-events", event.to_json()) == event


def test_time_is_normalised_to_utc_and_naive_times_are_refused() -> None:
    event = parse_event("x", '{"type": "a", "data": {}, "time": "2024-03-04T10:00:00+02:00"}')
    assert event.time == dt.datetime(2024, 3, 4, 8, tzinfo=dt.UTC)

    with pytest.raises(InvalidInputError, match="UTC offset"):
        parse_event("x", '{"type": "a", "data": {}, "time": "2024-03-04T10:00:00"}')


def test_the_scanner_shape_is_wrapped_and_normalised() -> None:
    event = parse_event(
        "trading-signals",
        {"tickers": [{"ticker": " brk.b ", "signal": "sell", "confidence": 12}], "scan": "s1"},
    )

    assert event.type == "signals.tickers" and event.source == "external"
    assert event.data == {
        "tickers": [{"ticker": "BRK.B", "signal": "BEARISH", "confidence": 12.0}],
        "scan": "s1",
    }


@pytest.mark.parametrize(
    ("ticker", "fragment"),
    [
        ({"ticker": "AAPL", "signal": "BUY", "confidence": True}, "confidence True"),
        ({"ticker": "AAPL", "signal": "BUY", "confidence": -1}, "greater than or equal to 0"),
        ({"ticker": "AAPL", "signal": "BUY"}, "confidence"),
        ({"ticker": 7, "signal": "BUY", "confidence": 1}, "ticker must be a string"),
        ({"ticker": "AAPL", "signal": "MOON", "confidence": 1}, "'MOON'"),
    ],
)
def test_a_bad_ticker_is_refused_with_the_reason(ticker: dict, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid trading signal") as info:
        parse_event("trading-signals", {"tickers": [ticker]})
    assert fragment in str(info.value)


def test_an_envelope_on_trading_signals_must_carry_tickers_too() -> None:
    with pytest.raises(InvalidInputError, match="tickers"):
        parse_event("trading-signals", {"type": "x", "data": {"symbol": "AAPL"}})


def test_make_event_wraps_plain_objects_but_keeps_envelopes() -> None:
    plain = make_event("market-data", {"symbol": "AAPL"})
    envelope = make_event("market-data", {"id": "e1", "type": "bar", "data": {"a": 1}})

    assert (plain.type, plain.data, plain.source) == (
        "market-data",
        {"symbol": "AAPL"},
        "breadthflow.cli",
    )
    assert (envelope.id, envelope.type, envelope.data) == ("e1", "bar", {"a": 1})


@pytest.mark.parametrize("topic", ["Trading", "", "-x", "a b", "a/b", "x" * 101, "ä"])
def test_bad_topic_names_are_refused(topic: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid topic"):
        validate_topic(topic)


def test_dead_letter_topics() -> None:
    assert dlq_topic("market-data") == "market-data.dlq"
    assert dlq_topic("market-data.dlq") == "market-data.dlq"


def test_bus_urls_split_into_scheme_and_options() -> None:
    assert split_url("sqlite") == ("sqlite", {})
    assert split_url("postgres?visibility_timeout=5") == ("postgres", {"visibility_timeout": "5"})
    assert split_url("redis://:pw@h:6379/0?prefix=x") == ("redis", {"prefix": "x"})


@given(json_values)
def test_decoding_anything_either_works_or_says_why(value: object) -> None:
    for topic in ("trading-signals", "pipeline-events"):
        try:
            event = parse_event(topic, json.dumps(value))
        except InvalidInputError as exc:
            assert exc.message and "\n" not in exc.message
        else:
            assert isinstance(event, Event)


@given(st.binary(max_size=200))
def test_decoding_random_bytes_never_crashes(payload: bytes) -> None:
    try:
        event = parse_event("market-data", payload)
    except InvalidInputError as exc:
        assert exc.message.strip()
    else:
        assert isinstance(event, Event)
