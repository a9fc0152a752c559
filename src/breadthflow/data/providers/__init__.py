"""Market-data providers, registered by name (``sample``, ``synthetic``, ``csv``, ``yahoo``).

A provider turns ``(symbol, timeframe, start, end)`` into bars. It knows nothing of the
lake or the DB: the ingest service (``breadthflow.services.data``) validates what it
returns, stores it and records the issues.
"""

from __future__ import annotations

import datetime as dt
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl

from breadthflow.core.config import Settings
from breadthflow.core.errors import InvalidInputError, unknown_name
from breadthflow.core.models import DataIssue, Timeframe

# Columns a provider returns; the ingest service adds ``source`` and ``ingested_at``.
PROVIDER_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume", "adj_factor")


@dataclass
class ProviderBars:
    """Bars for one symbol and the problems the provider found and fixed in them."""

    frame: pl.DataFrame
    issues: list[DataIssue] = field(default_factory=list)


class Provider(ABC):
    """Base class. Subclasses set ``name`` and ``timeframes`` and implement :meth:`fetch`."""

    name: ClassVar[str]
    timeframes: ClassVar[frozenset[Timeframe]] = frozenset({Timeframe.D1})
    # True when fetch does network I/O, so the ingest service fetches in parallel.
    io_bound: ClassVar[bool] = False

    def __init__(self, settings: Settings, options: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.options = dict(options or {})

    def known_symbols(self) -> list[str] | None:
        """Symbols this provider can serve, or None when any symbol may exist."""
        return None

    def check_timeframe(self, timeframe: Timeframe) -> None:
        if timeframe not in self.timeframes:
            known = ", ".join(sorted(t.value for t in self.timeframes))
            raise InvalidInputError(
                f"provider '{self.name}' has no {timeframe.value} bars — it serves: {known}"
            )

    @abstractmethod
    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        """Bars of ``symbol`` with start <= date <= end (for intraday: by the UTC date of
        the bar), columns :data:`PROVIDER_COLUMNS` with the dtypes of ``bar_schema``,
        sorted by date. Raise a BreadthFlowError subclass for a symbol that fails."""

    def dataset_issues(self, timeframe: Timeframe, start: dt.date, end: dt.date) -> list[DataIssue]:
        """Problems of the data set as a whole (e.g. sessions missing from the file)."""
        return []


ProviderFactory = Callable[[Settings, Mapping[str, str] | None], Provider]
_REGISTRY: dict[str, type[Provider]] = {}
_BUILTIN = ("sample", "synthetic", "csv", "yahoo")


def register_provider(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make a provider available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    for module in _BUILTIN:
        importlib.import_module(f"breadthflow.data.providers.{module}")


def provider_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_provider(
    name: str, settings: Settings, options: Mapping[str, str] | None = None
) -> Provider:
    """Instantiate the provider registered as ``name``; unknown names get a clear error."""
    _load_builtins()
    cls = _REGISTRY.get(name.strip().lower())
    if cls is None:
        raise unknown_name("provider", name, _REGISTRY)
    return cls(settings, options)
