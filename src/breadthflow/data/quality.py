"""Validation of incoming bars: what every provider's output goes through before storage.

The ingest service calls :func:`validate_bars` on each provider result. The rules are the
minimum a bar must satisfy to be usable by the indicators and the backtester, and each
problem is *reported* (a :class:`~breadthflow.core.models.DataIssue`), never silently
fixed or dropped:

===========================================  ==========================  =================
problem                                      action                      issue kind
===========================================  ==========================  =================
symbol or date missing                       row removed                 ``ROW_REJECTED``
open/high/low/close missing, NaN, ±inf, <=0  row removed                 ``ROW_REJECTED``
high < low                                   row removed                 ``ROW_REJECTED``
volume missing, NaN, ±inf or negative        row removed                 ``ROW_REJECTED``
adj_factor missing, NaN, ±inf or <= 0        row removed                 ``ROW_REJECTED``
several rows for one (symbol, date)          the last one is kept        ``DUPLICATE_DROPPED``
open outside [low, high]                     clamped into the range      ``OPEN_REPAIRED``
close outside [low, high]                    clamped into the range      ``CLOSE_REPAIRED``
===========================================  ==========================  =================

Order matters and is deliberate: unusable rows are removed first (so a bad duplicate
never shadows a good one), then duplicates are resolved (keeping the provider's latest
row, which is the freshest for an API that re-sends today's bar), and only then are the
surviving bars repaired (so a dropped duplicate is never reported as repaired).

Why clamp rather than reject an open outside the day's range: vendors often take the open
from the first trade print (or the official opening auction) and the high/low from the
consolidated tape, so the two disagree by a tick or two. The bar is otherwise sound;
rejecting it would punch a hole in every rolling window that covers it.

Zero volume is allowed (halted or very illiquid days exist); negative volume is not.

The function is pure and vectorised: every rule is one Polars expression over the whole
frame. Python only loops over the few offending rows to build the issue list.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from breadthflow.core.errors import DataError
from breadthflow.core.models import PRICE_COLUMNS, DataIssue, IssueKind, Timeframe, bar_schema
from breadthflow.data.providers import PROVIDER_COLUMNS

__all__ = ["provider_schema", "validate_bars"]

_REQUIRED = tuple(c for c in PROVIDER_COLUMNS if c != "adj_factor")
_ROW = "__row"
_REASON = "__reason"


def provider_schema(timeframe: Timeframe) -> dict[str, pl.DataType]:
    """Columns and dtypes a provider returns (:data:`PROVIDER_COLUMNS`), in that order."""
    full = bar_schema(timeframe)
    return {name: full[name] for name in PROVIDER_COLUMNS}


def validate_bars(
    frame: pl.DataFrame, timeframe: Timeframe, source: str
) -> tuple[pl.DataFrame, list[DataIssue]]:
    """Remove unusable bars, resolve duplicates and repair open/close; report each change.

    Returns the clean bars (columns :data:`PROVIDER_COLUMNS` with the dtypes of
    ``bar_schema(timeframe)``, sorted by symbol and date) and one issue per removed or
    changed row (one per duplicated date).

    >>> bars = pl.DataFrame({"symbol": ["A", "A"], "date": [dt.date(2010, 1, 4)] * 2,
    ...     "open": [10.5, 10.0], "high": [10.2, 10.2], "low": [9.8, 9.8],
    ...     "close": [10.1, 10.1], "volume": [100.0, 100.0], "adj_factor": [1.0, 1.0]})
    >>> clean, issues = validate_bars(bars, Timeframe.D1, "csv")
    >>> clean.height, [i.kind.value for i in issues]
    (1, ['duplicate_dropped'])
    """
    schema = provider_schema(timeframe)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: bars lack the column(s) {', '.join(missing)}")
    if frame.height == 0:
        return pl.DataFrame(schema=schema), []

    bars = _coerce(frame, timeframe).with_row_index(_ROW)

    # 1. Unusable rows.
    checked = bars.with_columns(_rejection_reason().alias(_REASON))
    rejected = checked.filter(pl.col(_REASON).is_not_null())
    kept = checked.filter(pl.col(_REASON).is_null()).drop(_REASON)
    issues = [
        DataIssue(
            symbol=row["symbol"],
            date=_issue_date(row["date"]),
            kind=IssueKind.ROW_REJECTED,
            detail=_where(row["date"], timeframe) + row[_REASON],
        )
        for row in rejected.sort(_ROW).iter_rows(named=True)
    ]

    # 2. Duplicates: keep the provider's last row for each (symbol, date).
    counts = (
        kept.group_by("symbol", "date")
        .agg(pl.len().alias("n"))
        .filter(pl.col("n") > 1)
        .sort("symbol", "date")
    )
    issues += [
        DataIssue(
            symbol=row["symbol"],
            date=_issue_date(row["date"]),
            kind=IssueKind.DUPLICATE_DROPPED,
            rows=row["n"] - 1,
            detail=(
                f"{_where(row['date'], timeframe)}{row['n']} rows for the same "
                f"{'bar' if timeframe.is_intraday else 'date'}; kept the last one"
            ),
        )
        for row in counts.iter_rows(named=True)
    ]
    if counts.height:
        kept = kept.sort(_ROW).unique(subset=["symbol", "date"], keep="last", maintain_order=True)

    # 3. Open / close outside the day's range: clamp into [low, high].
    repaired = kept.with_columns(
        pl.col("open").clip(pl.col("low"), pl.col("high")).alias("__open"),
        pl.col("close").clip(pl.col("low"), pl.col("high")).alias("__close"),
    ).sort("symbol", "date")
    for column, kind in (("open", IssueKind.OPEN_REPAIRED), ("close", IssueKind.CLOSE_REPAIRED)):
        changed = repaired.filter(pl.col(column) != pl.col(f"__{column}"))
        issues += [
            DataIssue(
                symbol=row["symbol"],
                date=_issue_date(row["date"]),
                kind=kind,
                detail=(
                    f"{_where(row['date'], timeframe)}{column} {_num(row[column])} outside "
                    f"low–high [{_num(row['low'])}, {_num(row['high'])}]; "
                    f"set to {_num(row[f'__{column}'])}"
                ),
            )
            for row in changed.iter_rows(named=True)
        ]

    clean = repaired.with_columns(
        pl.col("__open").alias("open"), pl.col("__close").alias("close")
    ).select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
    return clean, issues


def _coerce(frame: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """Bring the columns to the storage dtypes; values that do not convert become null
    (and are then rejected with a reason, rather than failing the whole symbol)."""
    numeric = [*PRICE_COLUMNS, "volume", "adj_factor"]
    adj = pl.col("adj_factor") if "adj_factor" in frame.columns else pl.lit(1.0)
    out = frame.with_columns(adj.alias("adj_factor")).select(
        pl.col("symbol").cast(pl.String),
        pl.col("date"),
        *[pl.col(c).cast(pl.Float64, strict=False) for c in numeric],
    )
    dtype = out.schema["date"]
    date = pl.col("date")
    if timeframe.is_intraday:
        if isinstance(dtype, pl.Datetime):
            # Naive timestamps are taken as UTC (the lake's convention); aware ones converted.
            date = date.dt.replace_time_zone("UTC") if dtype.time_zone is None else date
            date = date.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        else:
            date = date.cast(pl.Datetime("us", "UTC"), strict=False)
    else:
        date = (
            date.dt.date() if isinstance(dtype, pl.Datetime) else date.cast(pl.Date, strict=False)
        )
    return out.with_columns(date.alias("date"))


def _rejection_reason() -> pl.Expr:
    """The first rule a row breaks, as a readable sentence; null for a usable row."""
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("symbol").is_null(), pl.lit("symbol is missing")),
        (pl.col("date").is_null(), pl.lit("date is missing")),
    ]
    for column in PRICE_COLUMNS:
        value = pl.col(column)
        checks += [
            (value.is_null(), pl.lit(f"{column} is missing")),
            (~value.is_finite(), pl.format(f"{column} {{}} is not a finite number", value)),
            (value <= 0, pl.format(f"{column} {{}} is not positive", value)),
        ]
    checks.append(
        (
            pl.col("high") < pl.col("low"),
            pl.format("high {} is below low {}", pl.col("high"), pl.col("low")),
        )
    )
    volume, adj = pl.col("volume"), pl.col("adj_factor")
    checks += [
        (volume.is_null(), pl.lit("volume is missing")),
        (~volume.is_finite(), pl.format("volume {} is not a finite number", volume)),
        (volume < 0, pl.format("volume {} is negative", volume)),
        (adj.is_null(), pl.lit("adj_factor is missing")),
        (~adj.is_finite() | (adj <= 0), pl.format("adj_factor {} is not a positive number", adj)),
    ]
    first, *rest = checks
    reason = pl.when(first[0]).then(first[1])
    for condition, text in rest:
        reason = reason.when(condition).then(text)
    return reason.otherwise(pl.lit(None, dtype=pl.String))


def _issue_date(value: dt.date | dt.datetime | None) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _where(value: dt.date | dt.datetime | None, timeframe: Timeframe) -> str:
    """Intraday issues name the bar's time (the issue's ``date`` only holds the day)."""
    if timeframe.is_intraday and isinstance(value, dt.datetime):
        return f"bar {value:%Y-%m-%d %H:%M} UTC: "
    return ""


def _num(value: float) -> str:
    """Short, stable rendering of a price: 25.61, 9.0 (not 9 or 25.610000000000003)."""
    text = f"{value:.10g}"
    return text if any(ch in text for ch in ".en") else f"{text}.0"
