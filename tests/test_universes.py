"""Built-in universes: sizes, no duplicates, demo lists inside the sample."""

from __future__ import annotations

import pytest

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import normalize_symbol
from breadthflow.data import universes


@pytest.mark.parametrize("name", universes.builtin_names())
def test_builtin_lists_have_no_duplicates_and_valid_symbols(name):
    symbols = universes.builtin_symbols(name)
    assert symbols
    assert len(symbols) == len(set(symbols))
    assert all(normalize_symbol(s) == s for s in symbols)


@pytest.mark.parametrize(
    ("name", "size"), [("demo_small", 8), ("demo_medium", 20), ("demo_large", 40), ("dow30", 30)]
)
def test_demo_lists_are_made_of_sample_symbols(name, size):
    sample = set(universes.builtin_symbols("sample-sp500"))
    symbols = universes.builtin_symbols(name)
    assert len(symbols) == size
    assert set(symbols) <= sample


def test_synthetic_universe_any_size():
    assert universes.resolve_universe("synthetic-3") == ["SYN00001", "SYN00002", "SYN00003"]
    with pytest.raises(InvalidInputError):
        universes.resolve_universe("synthetic-0")


def test_unknown_universe_suggests_a_close_name():
    with pytest.raises(NotFoundError, match="did you mean 'dow30'"):
        universes.resolve_universe("dow31")
