"""Every built-in provider registers itself under its name."""

from __future__ import annotations

import pytest

from breadthflow.core.config import get_settings
from breadthflow.core.errors import NotFoundError
from breadthflow.core.models import Timeframe
from breadthflow.data.providers import get_provider, provider_names


def test_the_four_builtin_providers_are_registered() -> None:
    assert provider_names() == ["csv", "sample", "synthetic", "yahoo"]


@pytest.mark.parametrize(
    ("name", "timeframes", "io_bound"),
    [
        ("sample", {Timeframe.D1}, False),
        ("synthetic", set(Timeframe), False),
        ("yahoo", set(Timeframe), True),
    ],
)
def test_providers_declare_their_timeframes(
    name: str, timeframes: set[Timeframe], io_bound: bool
) -> None:
    provider = get_provider(name, get_settings())
    assert provider.name == name
    assert set(provider.timeframes) == timeframes
    assert provider.io_bound is io_bound


def test_unknown_provider_suggests_a_close_name() -> None:
    with pytest.raises(NotFoundError, match="did you mean 'sample'"):
        get_provider("sampel", get_settings())
