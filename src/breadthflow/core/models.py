"""Types shared by every layer: timeframes, the bar schema, data issues, reports.

Bars travel between layers as Polars frames in *long* format, one row per
``(symbol, date)``, with exactly the columns of :data:`BAR_SCHEMA` (in that order).
For daily bars ``date`` is a calendar date; for intraday timeframes it is the bar's
start as a UTC timestamp.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from breadthflow.core.errors import InvalidInputError


class Timeframe(StrEnum):
    """Bar interval. Daily bars are keyed by date, intraday bars by UTC timestamp."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def is_intraday(self) -> bool:
        return self is not Timeframe.D1

    @property
    def minutes(self) -> int:
        return {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "1d": 1440}[self.value]

    @classmethod
    def parse(cls, value: str | Timeframe) -> Timeframe:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise InvalidInputError(
                f"unknown timeframe '{value}' — expected one of {known}"
            ) from None


def date_dtype(timeframe: Timeframe) -> pl.DataType:
    """The Polars dtype of the ``date`` column for a timeframe."""
    return pl.Datetime("us", "UTC") if timeframe.is_intraday else pl.Date()


PRICE_COLUMNS = ("open", "high", "low", "close")
EXPORT_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")


def bar_schema(timeframe: Timeframe) -> dict[str, pl.DataType]:
    """Column names and dtypes of stored bars, in storage order."""
    return {
        "symbol": pl.String(),
        "date": date_dtype(timeframe),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
        # Multiplier already applied to the provider's raw prices (1.0 = as reported;
        # 0.5 for bars before a 2:1 split). Raw price = stored price / adj_factor.
        "adj_factor": pl.Float64(),
        "source": pl.String(),
        "ingested_at": pl.Datetime("us", "UTC"),
    }


BAR_COLUMNS = tuple(bar_schema(Timeframe.D1))


def empty_bars(timeframe: Timeframe = Timeframe.D1) -> pl.DataFrame:
    return pl.DataFrame(schema=bar_schema(timeframe))


# Tickers as exchanges and data vendors write them: BRK.B, BRK-B, ^GSPC, EURUSD=X.
# The first character is alphanumeric or '^', so a symbol can never be '.', '..' or a path.
_SYMBOL_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.\-=^]{0,19}$")


def normalize_symbol(raw: str) -> str:
    """Upper-case and validate one ticker symbol; raise a one-line error if malformed.

    >>> normalize_symbol(" brk.b ")
    'BRK.B'
    """
    symbol = raw.strip().upper()
    if not _SYMBOL_RE.fullmatch(symbol):
        shown = raw if raw.strip() else "(empty)"
        raise InvalidInputError(
            f"invalid symbol '{shown}' — expected 1-20 characters: letters, digits and . - = ^ "
            "(e.g. AAPL, BRK.B, ^GSPC)"
        )
    return symbol


def parse_symbols(values: str | list[str] | tuple[str, ...]) -> list[str]:
    """Parse a comma/space separated list (or several) into unique, valid symbols, in order."""
    items: list[str] = []
    for value in [values] if isinstance(values, str) else values:
        items.extend(part for part in re.split(r"[,\s]+", value) if part != "")
    if not items:
        raise InvalidInputError("no symbols given — expected e.g. --symbols AAPL,MSFT")
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(normalize_symbol(item), None)
    return list(seen)


def parse_date(value: str | dt.date, name: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD`` (or ``YYYYMMDD``) into a date, with a clear error."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise InvalidInputError(f"invalid {name} '{value}' — expected a date like 2010-08-20")


class DateRange(BaseModel):
    """An inclusive range of calendar dates."""

    model_config = ConfigDict(frozen=True)

    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, start: str | dt.date, end: str | dt.date) -> DateRange:
        s, e = parse_date(start, "start date"), parse_date(end, "end date")
        if s > e:
            raise InvalidInputError(f"start date {s} is after end date {e} — swap them")
        return cls(start=s, end=e)


class IssueKind(StrEnum):
    """What a data problem was and what the loader did about it."""

    SPLIT_ADJUSTED = "split_adjusted"
    CORPORATE_ACTION_ADJUSTED = "corporate_action_adjusted"
    OPEN_REPAIRED = "open_repaired"
    CLOSE_REPAIRED = "close_repaired"
    ROW_REJECTED = "row_rejected"
    DUPLICATE_DROPPED = "duplicate_dropped"
    MISSING_SESSION = "missing_session"
    MISSING_BARS = "missing_bars"


class DataIssue(BaseModel):
    """One problem found in incoming data, and the action taken. Never silent."""

    symbol: str | None = Field(None, description="None for dataset-wide issues (a missing session)")
    date: dt.date | None = None
    kind: IssueKind
    detail: str
    rows: int = 1

    @property
    def fixed(self) -> bool:
        return self.kind not in {IssueKind.MISSING_SESSION, IssueKind.MISSING_BARS}


class SymbolFailure(BaseModel):
    symbol: str
    error: str


class FetchReport(BaseModel):
    """What a fetch did: per-symbol outcomes, row counts and the problems found."""

    ingestion_id: int | None = None
    provider: str
    timeframe: Timeframe
    start: dt.date
    end: dt.date
    symbols_requested: int
    symbols_stored: int = 0
    rows_received: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    failures: list[SymbolFailure] = Field(default_factory=list)
    issues: list[DataIssue] = Field(default_factory=list)
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def issue_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for issue in self.issues:
            counts[issue.kind.value] = counts.get(issue.kind.value, 0) + issue.rows
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        return {
            "ingestion_id": self.ingestion_id,
            "provider": self.provider,
            "timeframe": self.timeframe.value,
            "range": [str(self.start), str(self.end)],
            "symbols_requested": self.symbols_requested,
            "symbols_stored": self.symbols_stored,
            "symbols_failed": len(self.failures),
            "rows_received": self.rows_received,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "first_date": str(self.first_date) if self.first_date else None,
            "last_date": str(self.last_date) if self.last_date else None,
            "issues": self.issue_counts(),
            "seconds": round(self.seconds, 3),
        }


# --- signals --------------------------------------------------------------------------------


class SignalType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class Signal(BaseModel):
    """One stored signal (docs/signals.md). Market-level signals carry the universe name
    as ``symbol``; ``pipeline_run_id`` is None for signals generated by hand."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    date: dt.date
    timeframe: str
    strategy: str
    signal_type: SignalType
    confidence: float = Field(ge=0.0, le=1.0)
    strength: float | None
    factors: dict[str, Any] = Field(default_factory=dict)
    create_time: dt.datetime
    pipeline_run_id: str | None = None
