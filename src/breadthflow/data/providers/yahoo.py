"""The ``yahoo`` provider: Yahoo Finance's chart API, called directly with httpx.

One request per symbol::

    GET {yahoo_base_url}/v8/finance/chart/{symbol}
        ?period1=<epoch s>&period2=<epoch s>&interval=1d|1m|5m|15m|60m
        &events=div|split&includePrePost=false

The answer is ``{"chart": {"result": [...], "error": null}}``; ``result[0]`` holds
``meta`` (``exchangeTimezoneName``, …), ``timestamp`` (bar starts, epoch seconds),
``indicators.quote[0]`` (``open/high/low/close/volume`` lists, ``null`` where Yahoo has
no print) and ``events.splits`` (``{ts: {date, numerator, denominator}}``). An unknown
symbol answers HTTP 404 with ``chart.error.code == "Not Found"``.

What this module does with it, and why:

- **Dates.** A daily bar's timestamp is some instant of the trading day (09:30 or
  midnight, exchange time), so its date is taken in ``meta.exchangeTimezoneName``: in UTC
  a Tokyo bar would land on the previous day. Intraday bars keep their UTC start time.
- **Splits.** The chart's OHLC are already split-adjusted (for every split up to today),
  so prices are stored as sent; ``adj_factor`` of a bar is the product of
  denominator/numerator of the splits after it (0.5 before a 2:1 split), and each split
  is reported as ``SPLIT_ADJUSTED``. Daily requests therefore run to *now*, not to
  ``end``: Yahoo only lists the events inside the window, and a split after ``end``
  still scales the bars in it. (Intraday windows are short and recent — Yahoo keeps 1m
  bars for 30 days, 5m/15m for 60 — so they stop at ``end``.) ``adjclose`` (which also
  removes dividends) is ignored.
- **Null rows.** Yahoo pads halted or missing bars with ``null``; those rows are skipped
  and each is reported as ``ROW_REJECTED``.
- **Failures.** HTTP 429, 5xx, connection errors and timeouts (10 s) are retried with
  exponential backoff plus jitter (options ``retries``, default 4 attempts, and
  ``backoff``, default 0.5 s), then raised as one ``ProviderError`` line. A 404 or a
  "Not Found" chart error is a ``NotFoundError`` — retrying cannot help.

A browser-like ``User-Agent`` is sent because Yahoo answers 429 to default client
agents. Tests never reach Yahoo: they serve recorded-style JSON on loopback and point
``BREADTHFLOW_YAHOO_BASE_URL`` at it (see ``tests/fixtures/yahoo/README.md``).
"""

from __future__ import annotations

import datetime as dt
import time
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import polars as pl
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from breadthflow.core.config import Settings
from breadthflow.core.errors import DataError, InvalidInputError, NotFoundError, ProviderError
from breadthflow.core.models import DataIssue, IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, ProviderBars, register_provider
from breadthflow.data.quality import provider_schema

__all__ = ["YahooProvider"]

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
TIMEOUT_SECONDS = 10.0
_INTERVALS = {
    Timeframe.D1: "1d",
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.H1: "60m",
}
_QUOTE_FIELDS = ("open", "high", "low", "close", "volume")


class _Retryable(Exception):
    """A failure worth another attempt (throttling, server error, network)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@register_provider
class YahooProvider(Provider):
    """Daily and intraday bars from Yahoo's chart API (options ``retries``, ``backoff``)."""

    name = "yahoo"
    timeframes = frozenset(Timeframe)
    io_bound = True

    def __init__(self, settings: Settings, options: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, options)
        self.base_url = settings.yahoo_base_url.rstrip("/")
        self.retries = _option_number(self.options, "retries", 4, int, minimum=1)
        self.backoff = _option_number(self.options, "backoff", 0.5, float, minimum=0.0)
        # One pooled client per provider (thread-safe; fetches run in parallel).
        self._client = httpx.Client(
            timeout=TIMEOUT_SECONDS,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )
        weakref.finalize(self, self._client.close)

    def close(self) -> None:
        self._client.close()

    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        self.check_timeframe(timeframe)
        payload = self._chart(symbol, timeframe, start, end)
        return parse_chart(payload, symbol, timeframe, start, end)

    def _chart(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> dict[str, Any]:
        # A day of margin on both sides: a daily bar's timestamp may sit on the previous
        # UTC day (Asia) and the filter on the exchange date happens after parsing.
        period1 = _epoch(start - dt.timedelta(days=1))
        period2 = _epoch(end + dt.timedelta(days=2))
        if not timeframe.is_intraday:
            period2 = max(period2, int(time.time()))  # see "Splits" in the module docs
        params = {
            "period1": str(period1),
            "period2": str(period2),
            "interval": _INTERVALS[timeframe],
            "events": "div|split",
            "includePrePost": "false",
        }
        url = f"{self.base_url}/v8/finance/chart/{quote(symbol, safe='')}"
        response = self._get_with_retries(symbol, url, params)
        try:
            payload = response.json()
        except ValueError:
            if response.status_code == 404:
                raise NotFoundError(f"yahoo: no data for symbol '{symbol}' — HTTP 404") from None
            kind = response.headers.get("content-type", "unknown content")
            raise DataError(
                f"yahoo: {symbol}: the answer is not JSON (HTTP {response.status_code}, {kind})"
            ) from None
        chart = payload.get("chart") if isinstance(payload, dict) else None
        if not isinstance(chart, dict):
            raise DataError(f"yahoo: {symbol}: the answer has no 'chart' object")
        error = chart.get("error")
        if error or response.status_code == 404:
            code = (error or {}).get("code", "Not Found")
            text = (error or {}).get("description") or f"HTTP {response.status_code}"
            if code == "Not Found" or response.status_code == 404:
                raise NotFoundError(f"yahoo: no data for symbol '{symbol}' — {text}")
            raise ProviderError(f"yahoo: {symbol}: {code}: {text}")
        if response.status_code >= 400:
            raise ProviderError(f"yahoo: {symbol}: HTTP {response.status_code}")
        return chart

    def _get_with_retries(self, symbol: str, url: str, params: dict[str, str]) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            # Exponential backoff (backoff, 2×, 4×, … capped at 30 s) plus up to one
            # backoff of random jitter, so parallel fetches do not retry in lockstep.
            wait=wait_exponential(multiplier=self.backoff, max=30) + wait_random(0, self.backoff),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(url, params)
        except _Retryable as exc:
            raise ProviderError(
                f"yahoo: {symbol} failed after {self.retries} attempts: {exc.reason}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def _get_once(self, url: str, params: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise _Retryable(f"timed out after {TIMEOUT_SECONDS:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        return response


def parse_chart(
    chart: Mapping[str, Any], symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
) -> ProviderBars:
    """Turn a chart-API ``chart`` object into provider bars (see the module docs)."""
    results = chart.get("result") or []
    if not results:
        raise NotFoundError(f"yahoo: no data for symbol '{symbol}'")
    result = results[0]
    meta = result.get("meta") or {}
    zone = _zone(meta.get("exchangeTimezoneName") or "UTC", symbol)
    stamps = result.get("timestamp") or []
    quotes = ((result.get("indicators") or {}).get("quote") or [{}])[0]
    columns: dict[str, list[Any]] = {"ts": stamps}
    for field in _QUOTE_FIELDS:
        values = quotes.get(field)
        if values is None:
            values = [None] * len(stamps)
        if len(values) != len(stamps):
            raise DataError(
                f"yahoo: {symbol}: {len(stamps)} timestamps but {len(values)} {field} values"
            )
        columns[field] = values

    instant = pl.from_epoch(pl.col("ts").cast(pl.Int64), time_unit="s").dt.replace_time_zone("UTC")
    local_day = instant.dt.convert_time_zone(zone.key).dt.date()
    bars = pl.DataFrame(
        columns,
        schema={"ts": pl.Int64, **{f: pl.Float64 for f in _QUOTE_FIELDS}},
        strict=False,
    ).with_columns(
        instant.dt.cast_time_unit("us").alias("instant"),
        local_day.alias("local_day"),
    )
    if timeframe.is_intraday:
        bars = bars.with_columns(pl.col("instant").alias("date"))
        in_range = pl.col("instant").dt.date().is_between(start, end)
    else:
        bars = bars.with_columns(pl.col("local_day").alias("date"))
        in_range = pl.col("local_day").is_between(start, end)
    bars = bars.filter(in_range)

    issues: list[DataIssue] = []
    empty = pl.any_horizontal(pl.col(f).is_null() for f in _QUOTE_FIELDS)
    for row in bars.filter(empty).iter_rows(named=True):
        nulls = [f for f in _QUOTE_FIELDS if row[f] is None]
        when = f"bar {row['instant']:%Y-%m-%d %H:%M} UTC: " if timeframe.is_intraday else ""
        issues.append(
            DataIssue(
                symbol=symbol,
                date=row["local_day"] if not timeframe.is_intraday else row["instant"].date(),
                kind=IssueKind.ROW_REJECTED,
                detail=f"{when}yahoo sent no {', '.join(nulls)}; bar skipped",
            )
        )
    bars = bars.filter(~empty)

    factor = pl.lit(1.0)
    for split_day, ratio, numerator, denominator in _splits(result, zone, symbol):
        earlier = pl.col("local_day") < split_day
        factor = factor * pl.when(earlier).then(denominator / numerator).otherwise(1.0)
        adjusted = bars.filter(earlier).height
        if adjusted:
            issues.append(
                DataIssue(
                    symbol=symbol,
                    date=split_day,
                    kind=IssueKind.SPLIT_ADJUSTED,
                    rows=adjusted,
                    detail=(
                        f"{ratio} split on {split_day}: Yahoo's prices are split-adjusted; "
                        f"{adjusted} earlier bars × {denominator / numerator:g} (adj_factor)"
                    ),
                )
            )
    schema = provider_schema(timeframe)
    frame = (
        bars.with_columns(factor.alias("adj_factor"), pl.lit(symbol).alias("symbol"))
        .select([pl.col(c).cast(schema[c]) for c in PROVIDER_COLUMNS])
        .sort("date", maintain_order=True)
    )
    return ProviderBars(frame, issues)


def _splits(
    result: Mapping[str, Any], zone: ZoneInfo, symbol: str
) -> list[tuple[dt.date, str, float, float]]:
    """(ex-date in exchange time, "2:1", numerator, denominator) of each split event."""
    events = (result.get("events") or {}).get("splits") or {}
    splits = []
    for key, event in events.items():
        try:
            stamp = int(event.get("date", key))
            numerator, denominator = float(event["numerator"]), float(event["denominator"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"yahoo: {symbol}: malformed split event {event!r}") from None
        if numerator <= 0 or denominator <= 0:
            raise DataError(f"yahoo: {symbol}: split event with ratio {event!r}")
        day = dt.datetime.fromtimestamp(stamp, tz=zone).date()
        ratio = event.get("splitRatio") or f"{numerator:g}:{denominator:g}"
        splits.append((day, ratio, numerator, denominator))
    return sorted(splits)


def _zone(name: str, symbol: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"yahoo: {symbol}: unknown exchange time zone '{name}'") from None


def _epoch(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())


def _option_number(
    options: Mapping[str, str], name: str, default: float, kind: type, minimum: float
) -> Any:
    raw = options.get(name, default)
    try:
        value = kind(str(raw).strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        expected = "a whole number" if kind is int else "a number"
        raise InvalidInputError(
            f"provider 'yahoo' option {name}='{raw}' is invalid — expected {expected} "
            f">= {minimum:g}"
        )
    return value
