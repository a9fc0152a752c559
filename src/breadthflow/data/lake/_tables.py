"""Result tables in the lake: whole Parquet files under ``results/`` (backtest equity
curves, trade lists, Monte Carlo fans), written atomically like bar partitions."""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from breadthflow.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

# Keys are relative paths of plain segments (`results/backtests/12/equity.parquet`):
# nothing that could climb out of the lake's root.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


def check_table_key(key: str) -> str:
    parts = key.split("/")
    if not key.endswith(".parquet") or not all(_SEGMENT.match(p) and p != ".." for p in parts):
        raise InvalidInputError(
            f"invalid table key {key!r} — expected relative segments of letters, digits, "
            "'_', '-', '.', '=' ending in .parquet"
        )
    return key


class TableStore:
    """Mixin for :class:`~breadthflow.data.lake._base.ParquetLake`: whole-table files."""

    _fs: pafs.FileSystem
    _root: str

    def _commit(self, path: str, table: pa.Table) -> None:  # provided by the lake
        raise NotImplementedError

    def write_table(self, key: str, frame: pl.DataFrame) -> None:
        """Store ``frame`` at ``key`` (relative to the lake root), replacing it whole:
        readers see the old file or the new one, never half of one."""
        path = posixpath.join(self._root, check_table_key(key))
        with self._backend_errors():  # type: ignore[attr-defined]
            self._commit(path, frame.to_arrow())

    def read_table(self, key: str) -> pl.DataFrame | None:
        """The table at ``key``, or None when there is none."""
        path = posixpath.join(self._root, check_table_key(key))
        with self._backend_errors():  # type: ignore[attr-defined]
            if self._fs.get_file_info(path).type != pafs.FileType.File:
                return None
            with self._fs.open_input_file(path) as source:
                return pl.from_arrow(pq.read_table(source))  # type: ignore[return-value]
