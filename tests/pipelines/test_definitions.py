"""Pipeline definitions: validation and schedules."""

from __future__ import annotations

import datetime as dt

import pytest

from breadthflow.core.errors import InvalidInputError
from breadthflow.pipelines.definitions import definition_from, parse_schedule

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_defaults_make_a_daily_demo_breadth_pipeline():
    d = definition_from({"name": "daily"})
    assert (d.kind, d.mode, d.schedule, d.trigger_mode, d.is_active) == (
        "breadth", "demo", "1d", "periodic", True,
    )  # fmt: skip
    assert d.retry_policy.max_attempts == 3 and d.error_policy == "retry"


@pytest.mark.parametrize(
    ("expression", "after", "due"),
    [
        ("5m", at(2024, 3, 4, 10, 2, 30), at(2024, 3, 4, 10, 5)),
        ("5m", at(2024, 3, 4, 10, 5), at(2024, 3, 4, 10, 10)),  # strictly after
        ("30s", at(2024, 3, 4, 10, 0, 29), at(2024, 3, 4, 10, 0, 30)),
        ("1h", at(2024, 3, 4, 10, 59), at(2024, 3, 4, 11, 0)),
        ("1d", at(2024, 3, 4, 10, 0), at(2024, 3, 5, 0, 0)),
    ],
)
def test_intervals_are_aligned_to_the_epoch(expression, after, due):
    assert parse_schedule(expression).next_after(after) == due


def test_cron_is_read_in_its_time_zone():
    schedule = parse_schedule("30 16 * * mon-fri", "America/New_York")
    # Friday 2024-03-08 17:00 New York (22:00 UTC) → next is Monday 16:30 EDT (20:30 UTC),
    # after the switch to daylight saving time on 2024-03-10.
    assert schedule.next_after(at(2024, 3, 8, 22, 0)) == at(2024, 3, 11, 20, 30)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"name": "x", "schedule": "5 minutes"}, "invalid schedule '5 minutes'"),
        ({"name": "x", "schedule": "61 * * * *"}, "invalid schedule"),
        ({"name": "x", "schedule": "0s"}, "at least 1s"),
        ({"name": "x", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"name": "Bad Name"}, "name='Bad Name'"),
        ({"name": "x", "kind": "ml"}, "kind='ml'"),
        ({"name": "x", "mode": "custom_symbols"}, "needs symbols or a universe"),
        ({"name": "x", "schedule": None}, "needs a schedule"),
        ({"name": "x", "symbols": "A;B"}, "A;B"),
        ({"name": "x", "error_policy": "ignore"}, "error_policy='ignore'"),
        ({"name": "x", "retry_policy": {"max_attempts": 0}}, "retry_policy.max_attempts=0"),
        ({"name": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_definitions_are_one_line_errors(values, fragment):
    with pytest.raises(InvalidInputError) as caught:
        definition_from(values)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_symbols_are_normalised_from_text():
    d = definition_from({"name": "x", "mode": "custom_symbols", "symbols": "aapl, msft"})
    assert d.symbols == ["AAPL", "MSFT"]


@pytest.mark.parametrize("symbols", [[1, 2], {"a": 1}, [["AAPL"]]])
def test_symbols_that_are_not_text_are_one_clear_error(symbols: object) -> None:
    with pytest.raises(InvalidInputError, match="expected a list of symbols"):
        definition_from({"name": "x", "mode": "custom_symbols", "symbols": symbols})
