"""Named symbol lists: built-in universes plus the user's lists stored in the DB.

Built-ins:

- ``demo_small`` / ``demo_medium`` / ``demo_large`` (8 / 20 / 40): large, liquid S&P 500
  names, each contained in the bundled sample data so the demo works offline.
- ``dow30``: the Dow Jones Industrial Average as constituted from 2009-06-08 (when Cisco
  and Travelers replaced Citigroup and General Motors) to 2012-09-24 — the members during
  the whole sample period.
- ``sectors``: the eleven Select Sector SPDR ETFs (for the yahoo provider).
- ``sample-sp500``: every symbol in the sample data (524).
- ``synthetic-N``: ``SYN00001`` … ``SYN{N}`` for the synthetic provider (any N up to 100,000).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from breadthflow.core.errors import InvalidInputError, unknown_name

_DEMO_SMALL = ("AAPL", "MSFT", "JPM", "XOM", "JNJ", "PG", "GE", "WMT")
_DEMO_MEDIUM = (
    *_DEMO_SMALL,
    "IBM", "INTC", "CSCO", "KO", "PFE", "CVX", "BAC", "HD", "MRK", "T", "VZ", "ORCL",
)  # fmt: skip
_DEMO_LARGE = (
    *_DEMO_MEDIUM,
    "GOOG", "AMZN", "MCD", "DIS", "BA", "CAT", "MMM", "UTX", "HPQ", "C",
    "WFC", "GS", "AXP", "COP", "SLB", "PEP", "QCOM", "UNH", "AMGN", "TXN",
)  # fmt: skip
_DOW30 = (
    "MMM", "AA", "AXP", "T", "BAC", "BA", "CAT", "CVX", "CSCO", "KO",
    "DD", "XOM", "GE", "HPQ", "HD", "INTC", "IBM", "JNJ", "JPM", "KFT",
    "MCD", "MRK", "MSFT", "PFE", "PG", "TRV", "UTX", "VZ", "WMT", "DIS",
)  # fmt: skip
_SECTORS = ("XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY")

_SYNTHETIC_RE = re.compile(r"^synthetic-(\d{1,6})$")
MAX_SYNTHETIC = 100_000


@dataclass(frozen=True)
class UniverseInfo:
    name: str
    kind: str  # "builtin" or "user"
    size: int
    description: str


def _sample_symbols() -> list[str]:
    from breadthflow.core.config import get_settings
    from breadthflow.data.providers import get_provider

    symbols = get_provider("sample", get_settings()).known_symbols()
    assert symbols is not None
    return symbols


def synthetic_universe(n: int) -> list[str]:
    if not 1 <= n <= MAX_SYNTHETIC:
        raise InvalidInputError(
            f"synthetic universe size {n} out of range — expected 1 to {MAX_SYNTHETIC}"
        )
    return [f"SYN{i:05d}" for i in range(1, n + 1)]


_BUILTIN: dict[str, tuple[str, Callable[[], list[str]]]] = {
    "demo_small": ("8 large S&P 500 names (in the sample data)", lambda: list(_DEMO_SMALL)),
    "demo_medium": ("20 large S&P 500 names (in the sample data)", lambda: list(_DEMO_MEDIUM)),
    "demo_large": ("40 large S&P 500 names (in the sample data)", lambda: list(_DEMO_LARGE)),
    "dow30": (
        "Dow Jones Industrial Average members, 2009-06-08 to 2012-09-24",
        lambda: list(_DOW30),
    ),
    "sectors": ("the eleven Select Sector SPDR ETFs", lambda: list(_SECTORS)),
    "sample-sp500": (
        "every symbol of the bundled S&P 500 sample (2009-08-21 → 2010-08-20)",
        _sample_symbols,
    ),
}


def builtin_names() -> list[str]:
    return list(_BUILTIN)


def is_builtin(name: str) -> bool:
    return name in _BUILTIN or _SYNTHETIC_RE.fullmatch(name) is not None


def builtin_symbols(name: str) -> list[str] | None:
    """Symbols of a built-in universe, or None if ``name`` is not built in."""
    if name in _BUILTIN:
        return _BUILTIN[name][1]()
    match = _SYNTHETIC_RE.fullmatch(name)
    if match:
        return synthetic_universe(int(match.group(1)))
    return None


def builtin_infos() -> list[UniverseInfo]:
    infos = [
        UniverseInfo(name, "builtin", len(load()), description)
        for name, (description, load) in _BUILTIN.items()
    ]
    infos.append(
        UniverseInfo("synthetic-N", "builtin", 0, "SYN00001…SYN{N} for the synthetic provider")
    )
    return infos


def resolve_universe(
    name: str,
    lookup: Callable[[str], list[str] | None] | None = None,
    user_names: Iterable[str] = (),
) -> list[str]:
    """Symbols of a built-in or user universe; unknown names get a suggestion.

    ``lookup`` finds a name among the user's stored lists (None when absent);
    ``user_names`` are those lists' names, offered in the error message.
    """
    key = name.strip()
    symbols = builtin_symbols(key)
    if symbols is None and lookup is not None:
        symbols = lookup(key)
    if symbols is None:
        raise unknown_name("universe", key, [*builtin_names(), "synthetic-N", *user_names])
    return symbols
