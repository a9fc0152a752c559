"""The ``csv`` provider: a folder of the user's files, one per symbol.

Layout: ``--path DIR`` holds ``<SYMBOL>.csv`` files (the name is matched without regard
to case, so ``aapl.csv`` serves AAPL). Each file has a header row; header names are
matched without regard to case, surrounding spaces or a UTF-8 byte-order mark, and
spaces inside a name count as underscores (``Adj Close`` = ``adj_close``):

- ``date`` (or ``datetime`` / ``timestamp``): for daily bars ``YYYY-MM-DD`` or
  ``YYYYMMDD``; for intraday bars an ISO-8601 timestamp of the bar's start
  (``2024-01-31T14:30:00Z``, ``2024-01-31 09:30:00-05:00``; without an offset it is UTC);
- ``open, high, low, close, volume``: numbers;
- anything else (``adj_close``, ``dividends``, …) is ignored. Prices are stored as given
  (``adj_factor`` 1.0): the file's author decides whether they are adjusted.

Errors name the file, the 1-based line (the header is line 1), the column and the value,
so the user can open the file at that line: ``prices/AAPL.csv line 17: close 'abc' is
not a number``. Empty cells and the usual missing markers (``null``, ``NaN``, ``NA``,
``N/A``, ``-``) are not errors: those bars reach validation, which rejects them and
reports each one (a CSV exported from a chart site often has a few such rows). Blank lines
are skipped. Line numbers assume no quoted field spans several lines, which no OHLCV
export does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from breadthflow.core.config import Settings
from breadthflow.core.errors import DataError, InvalidInputError, NotFoundError
from breadthflow.core.models import Timeframe, normalize_symbol
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, ProviderBars, register_provider
from breadthflow.data.quality import provider_schema

__all__ = ["CsvProvider"]

_DATE_NAMES = ("date", "datetime", "timestamp")
_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
_MISSING = ("", "null", "nan", "na", "n/a", "-")
_LINE = "__line"


@register_provider
class CsvProvider(Provider):
    """Bars read from ``<SYMBOL>.csv`` files in the folder given as option ``path``."""

    name = "csv"
    timeframes = frozenset(Timeframe)

    def __init__(self, settings: Settings, options: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, options)
        raw = str(self.options.get("path") or "").strip()
        if not raw:
            raise InvalidInputError("provider 'csv' needs a folder: --path DIR")
        self.shown_folder = raw
        self.folder = Path(raw).expanduser()
        if not self.folder.exists():
            raise NotFoundError(f"folder '{raw}' does not exist — give --path a folder of CSVs")
        if not self.folder.is_dir():
            raise InvalidInputError(f"'{raw}' is a file — give --path the folder that holds it")

    def known_symbols(self) -> list[str]:
        return sorted(self._files())

    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        self.check_timeframe(timeframe)
        key = symbol.strip().upper()
        path = self._files().get(key)
        if path is None:
            raise NotFoundError(
                f"no file for symbol '{symbol}' in folder '{self.shown_folder}' — "
                f"expected {key}.csv"
            )
        frame = read_bars_csv(path, timeframe, key, shown=str(Path(self.shown_folder) / path.name))
        date = pl.col("date").dt.date() if timeframe.is_intraday else pl.col("date")
        return ProviderBars(frame.filter(date.is_between(start, end)))

    def _files(self) -> dict[str, Path]:
        """Symbol → file, for every ``*.csv`` whose stem is a valid symbol."""
        files: dict[str, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or path.suffix.lower() != ".csv":
                continue
            try:
                symbol = normalize_symbol(path.stem)
            except InvalidInputError:
                continue  # notes.csv-like files that cannot be a ticker are not ours
            if symbol in files:
                raise DataError(
                    f"folder '{self.shown_folder}' has two files for {symbol}: "
                    f"{files[symbol].name} and {path.name} — keep one"
                )
            files[symbol] = path
        return files


def read_bars_csv(path: Path, timeframe: Timeframe, symbol: str, shown: str) -> pl.DataFrame:
    """Parse one symbol's CSV into provider bars (sorted by date, file order kept for
    equal dates so validation keeps the last). ``shown`` is the name used in errors."""
    try:
        text = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.NoDataError:
        raise DataError(f"{shown} is empty — expected a header row and one row per bar") from None
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{shown} is not a readable CSV file: {first}") from None

    columns = _match_columns(text.columns, shown)
    # Polars reads a blank line as a row of nulls, so row i is line i + 2 (header = 1).
    rows = (
        text.select(pl.col(original).alias(name) for name, original in columns.items())
        .with_row_index(_LINE, offset=2)
        .filter(~pl.all_horizontal(pl.col(name).is_null() for name in columns))
        .with_columns(pl.col(name).str.strip_chars() for name in columns)
    )
    values = [_number(rows, name, shown) for name in _VALUE_COLUMNS]
    date = _timestamp(rows, shown) if timeframe.is_intraday else _day(rows, shown)
    schema = provider_schema(timeframe)
    return (
        pl.DataFrame([date, *values])
        .with_columns(pl.lit(symbol).alias("symbol"), pl.lit(1.0).alias("adj_factor"))
        .select([pl.col(name).cast(schema[name]) for name in PROVIDER_COLUMNS])
        .sort("date", maintain_order=True)
    )


def _match_columns(header: list[str], shown: str) -> dict[str, str]:
    """Our column name → the file's header name, for date and the five values."""
    normal: dict[str, str] = {}
    for original in header:
        name = original.replace("\ufeff", "").strip().lower().replace(" ", "_")
        if name in normal:
            raise DataError(f"{shown}: column '{name}' appears twice in the header")
        normal[name] = original
    matched: dict[str, str] = {}
    date_name = next((n for n in _DATE_NAMES if n in normal), None)
    if date_name is None:
        raise DataError(
            f"{shown}: no date column — expected one named date, datetime or timestamp "
            f"(header: {', '.join(header)})"
        )
    matched["date"] = normal[date_name]
    for name in _VALUE_COLUMNS:
        if name not in normal:
            raise DataError(
                f"{shown}: missing column '{name}' — expected date, open, high, low, close, "
                f"volume (header: {', '.join(header)})"
            )
        matched[name] = normal[name]
    return matched


def _number(rows: pl.DataFrame, column: str, shown: str) -> pl.Series:
    """Parse a value column; missing markers become null, anything else must be a number."""
    raw = rows.get_column(column)
    missing = raw.is_null() | raw.str.to_lowercase().is_in(_MISSING)
    parsed = raw.cast(pl.Float64, strict=False)
    bad = parsed.is_null() & ~missing
    if bad.any():
        i = int(bad.arg_true()[0])
        raise DataError(f"{shown} line {rows[_LINE][i]}: {column} '{raw[i]}' is not a number")
    # A "nan" cell parses as NaN; make every missing marker a plain null for validation.
    return parsed.set(missing, None).alias(column) if missing.any() else parsed.alias(column)


def _day(rows: pl.DataFrame, shown: str) -> pl.Series:
    raw = rows.get_column("date")
    parsed = pl.select(
        pl.coalesce(
            raw.str.to_date("%Y-%m-%d", strict=False),
            raw.str.to_date("%Y%m%d", strict=False),
        )
    ).to_series()
    _raise_first_null(rows, raw, parsed, shown, "a date like 2024-01-31 or 20240131")
    return parsed.alias("date")


def _timestamp(rows: pl.DataFrame, shown: str) -> pl.Series:
    raw = rows.get_column("date")
    # One spelling for the parser: 'T' → ' ', trailing 'Z' → '+00:00'.
    text = raw.str.replace("T", " ", literal=True).str.replace(r"[zZ]$", "+00:00")
    aware = [
        text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
        for fmt in ("%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%:z")
    ]
    naive = [
        text.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC")
        for fmt in ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")
    ]
    parsed = pl.select(pl.coalesce(*aware, *naive)).to_series()
    _raise_first_null(rows, raw, parsed, shown, "an ISO-8601 timestamp like 2024-01-31T14:30:00Z")
    return parsed.alias("date")


def _raise_first_null(
    rows: pl.DataFrame, raw: pl.Series, parsed: pl.Series, shown: str, expected: str
) -> None:
    bad = parsed.is_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        value = raw[i] if raw[i] is not None else ""
        raise DataError(f"{shown} line {rows[_LINE][i]}: date '{value}' is not {expected}")
