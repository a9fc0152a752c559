"""The market-data lake: Parquet bars, hive-partitioned by timeframe and symbol.

Layout under the lake root (``file://…`` or ``s3://bucket/prefix``)::

    bars/timeframe=1d/symbol=AAPL/part-0.parquet
    bars/timeframe=1d/_snapshot.arrow          (local lake) a read copy of every partition

Each file holds every bar of one ``(timeframe, symbol)`` with the columns of
:func:`breadthflow.core.models.bar_schema`, sorted by date, unique per date. No file
name encodes a date range, so any range can be read back. Writes are upserts keyed by
``(symbol, timeframe, date)`` and atomic per partition: the new file is written aside
and renamed into place (local) or uploaded in one PUT (S3), so a crash never leaves a
half-written partition and re-fetching never duplicates rows.

Implementations register under a URL scheme; :func:`open_lake` picks one by URL.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from breadthflow.core.config import Settings
from breadthflow.core.errors import ConfigError
from breadthflow.core.models import Timeframe


@dataclass(frozen=True)
class UpsertResult:
    """Row counts of one upsert, summed over the partitions it touched."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    partitions: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.partitions + other.partitions,
        )


class Lake(ABC):
    """Interface every lake implementation provides."""

    url: str

    @abstractmethod
    def upsert(self, bars: pl.DataFrame, timeframe: Timeframe) -> UpsertResult:
        """Insert or replace bars keyed by (symbol, timeframe, date); atomic per symbol.

        ``bars`` has the columns of ``bar_schema(timeframe)`` (any symbols). A row whose
        values equal the stored ones counts as unchanged and is not rewritten.
        """

    @abstractmethod
    def read(
        self,
        symbols: Sequence[str] | None = None,
        timeframe: Timeframe = Timeframe.D1,
        start: dt.date | dt.datetime | None = None,
        end: dt.date | dt.datetime | None = None,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Bars for ``symbols`` (all when None) with start <= date <= end (inclusive, either
        bound optional), sorted by (symbol, date). Unknown symbols give no rows."""

    @abstractmethod
    def symbols(self, timeframe: Timeframe = Timeframe.D1) -> list[str]:
        """Sorted symbols that have at least one stored bar for the timeframe."""

    @abstractmethod
    def timeframes(self) -> list[Timeframe]:
        """Timeframes that have at least one stored partition."""

    @abstractmethod
    def coverage(
        self, timeframe: Timeframe = Timeframe.D1, symbols: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """One row per stored symbol: ``symbol, rows, first_date, last_date``."""

    @abstractmethod
    def delete(self, symbol: str, timeframe: Timeframe = Timeframe.D1) -> bool:
        """Remove one partition; True if it existed."""

    @abstractmethod
    def check(self) -> None:
        """Raise BackendUnavailableError with one clear line if the lake cannot be written."""

    def refresh_snapshot(self, timeframe: Timeframe = Timeframe.D1) -> Any | None:
        """Bring the timeframe's read snapshot (one consolidated file that makes whole-
        universe reads fast) up to date; returns what was done, or None when this lake
        keeps no snapshot (the default). Reads never depend on it being up to date."""
        return None

    def snapshot_status(self, timeframe: Timeframe = Timeframe.D1) -> dict[str, Any] | None:
        """How the timeframe's read snapshot stands; None when this lake keeps none."""
        return None

    @abstractmethod
    def write_table(self, key: str, frame: pl.DataFrame) -> None:
        """Store a whole result table (``results/…/name.parquet``) atomically."""

    @abstractmethod
    def read_table(self, key: str) -> pl.DataFrame | None:
        """A result table written by :meth:`write_table`, or None."""


LakeFactory = Callable[[str, Settings], Lake]
_REGISTRY: dict[str, LakeFactory] = {}


def register_lake(*schemes: str) -> Callable[[LakeFactory], LakeFactory]:
    def decorate(factory: LakeFactory) -> LakeFactory:
        for scheme in schemes:
            _REGISTRY[scheme] = factory
        return factory

    return decorate


def _load_builtins() -> None:
    # Importing registers them; kept lazy so the S3 code loads only when used.
    from breadthflow.data.lake import local, s3  # noqa: F401


def open_lake(url: str, settings: Settings) -> Lake:
    """Open the lake at ``url`` (``file:///path``, a plain path, or ``s3://bucket/prefix``)."""
    _load_builtins()
    scheme = urlsplit(url).scheme or "file"
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = "file"
    factory = _REGISTRY.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_REGISTRY))
        raise ConfigError(f"unsupported lake URL '{url}' — expected one of {known}")
    return factory(url, settings)
