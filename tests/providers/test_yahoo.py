"""The yahoo provider against a real HTTP server on loopback serving chart-API fixtures."""

from __future__ import annotations

import copy
import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from breadthflow.core.config import get_settings
from breadthflow.core.errors import InvalidInputError, NotFoundError, ProviderError
from breadthflow.core.models import IssueKind, Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, get_provider
from breadthflow.data.providers.sample import SampleProvider, raw_sample
from breadthflow.data.quality import provider_schema
from tests.providers.conftest import ChartServer, load_chart

FAST = {"backoff": "0.001"}  # tiny backoff: retries happen, the test stays fast
DHR_START, DHR_END = dt.date(2010, 5, 3), dt.date(2010, 6, 30)
SPLIT_DAY = dt.date(2010, 6, 14)
NULL_DAY = dt.date(2010, 5, 20)


def yahoo(**options: str) -> Provider:
    return get_provider("yahoo", get_settings(), {**FAST, **options})


def test_daily_fixture_parses_into_provider_bars(chart_server: ChartServer) -> None:
    bars = yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    frame = bars.frame
    assert tuple(frame.columns) == PROVIDER_COLUMNS
    assert frame.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert frame["date"].is_sorted()
    sample_days = raw_sample().filter(
        pl.col("Symbol") == "DHR", pl.col("Date").is_between(DHR_START, DHR_END)
    )["Date"]
    # Every session of the range except the all-null bar, dated in New York time.
    assert frame["date"].to_list() == [d for d in sample_days.to_list() if d != NULL_DAY]


def test_daily_bars_carry_the_split_factor_and_report_the_split(
    chart_server: ChartServer,
) -> None:
    bars = yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    before = bars.frame.filter(pl.col("date") < SPLIT_DAY)
    after = bars.frame.filter(pl.col("date") >= SPLIT_DAY)
    assert before["adj_factor"].unique().to_list() == [0.5]
    assert after["adj_factor"].unique().to_list() == [1.0]
    splits = [i for i in bars.issues if i.kind is IssueKind.SPLIT_ADJUSTED]
    assert len(splits) == 1
    assert splits[0].date == SPLIT_DAY and splits[0].rows == before.height
    assert "2:1" in splits[0].detail
    # Yahoo's split-adjusted prices equal the sample provider's own split adjustment.
    ours = SampleProvider(get_settings()).fetch("DHR", Timeframe.D1, DHR_START, DHR_END).frame
    joined = bars.frame.join(ours, on="date", suffix="_sample")
    assert joined.height == bars.frame.height
    for column in ("open", "high", "low", "close", "volume", "adj_factor"):
        assert joined[column].to_list() == pytest.approx(
            joined[f"{column}_sample"].to_list(), rel=1e-6
        )


def test_null_bar_is_skipped_and_reported(chart_server: ChartServer) -> None:
    bars = yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    assert NULL_DAY not in bars.frame["date"].to_list()
    rejected = [i for i in bars.issues if i.kind is IssueKind.ROW_REJECTED]
    assert [(i.symbol, i.date) for i in rejected] == [("DHR", NULL_DAY)]
    assert "open, high, low, close, volume" in rejected[0].detail


def test_range_filter_uses_the_exchange_date(chart_server: ChartServer) -> None:
    bars = yahoo().fetch("DHR", Timeframe.D1, dt.date(2010, 6, 10), dt.date(2010, 6, 15))
    assert [str(d) for d in bars.frame["date"]] == [
        "2010-06-10", "2010-06-11", "2010-06-14", "2010-06-15",
    ]  # fmt: skip
    assert [i.rows for i in bars.issues if i.kind is IssueKind.SPLIT_ADJUSTED] == [2]


def test_daily_dates_are_taken_in_the_exchange_time_zone(chart_server: ChartServer) -> None:
    # A Tokyo listing stamped at local midnight: 15:00 UTC on the *previous* day.
    tokyo = ZoneInfo("Asia/Tokyo")
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    payload = copy.deepcopy(load_chart("chart_DHR_1d.json"))
    result = payload["chart"]["result"][0]
    result["meta"].update(exchangeTimezoneName="Asia/Tokyo", symbol="7203.T")
    result["timestamp"] = [
        int(dt.datetime.combine(d, dt.time(), tzinfo=tokyo).timestamp()) for d in days
    ]
    result["events"] = {}
    quote = result["indicators"]["quote"][0]
    for key in quote:
        quote[key] = quote[key][:3]
    chart_server.routes[("7203.T", "1d")] = payload

    bars = yahoo().fetch("7203.T", Timeframe.D1, days[0], days[-1])

    assert bars.frame["date"].to_list() == days
    assert bars.frame["symbol"].unique().to_list() == ["7203.T"]


def test_request_uses_the_chart_api_parameters(chart_server: ChartServer) -> None:
    yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    (request,) = chart_server.requests
    assert request.symbol == "DHR"
    assert request.query["interval"] == "1d"
    assert request.query["events"] == "div|split"
    assert request.query["includePrePost"] == "false"
    start = int(dt.datetime.combine(DHR_START, dt.time(), tzinfo=dt.UTC).timestamp())
    assert int(request.query["period1"]) <= start
    # Daily requests run to now, so splits after the range are listed too.
    assert int(request.query["period2"]) >= int(dt.datetime.now(dt.UTC).timestamp()) - 60
    assert request.headers["User-Agent"].startswith("Mozilla/5.0")


def test_intraday_fixture_gives_utc_bar_starts(chart_server: ChartServer) -> None:
    day = dt.date(2010, 8, 20)
    bars = yahoo().fetch("AAPL", Timeframe.M5, day, day)

    frame = bars.frame
    assert frame.schema == pl.Schema(provider_schema(Timeframe.M5))
    assert frame.height == 78
    stamps = frame["date"].to_list()
    assert stamps[0] == dt.datetime(2010, 8, 20, 13, 30, tzinfo=dt.UTC)
    assert stamps[-1] == dt.datetime(2010, 8, 20, 19, 55, tzinfo=dt.UTC)
    assert frame["date"].diff().drop_nulls().unique().to_list() == [dt.timedelta(minutes=5)]
    assert bars.issues == []
    assert chart_server.requests[0].query["interval"] == "5m"
    # The day's real open/high/low/close from the sample are the intraday extremes.
    daily = (
        raw_sample().filter(pl.col("Symbol") == "AAPL", pl.col("Date") == day).row(0, named=True)
    )
    assert frame["open"][0] == pytest.approx(daily["Open"], rel=1e-6)
    assert frame["close"][-1] == pytest.approx(daily["Close"], rel=1e-6)
    assert frame["high"].max() == pytest.approx(daily["High"], rel=1e-6)
    assert frame["low"].min() == pytest.approx(daily["Low"], rel=1e-6)
    assert frame["volume"].sum() == daily["Volume"] * 100


def test_one_hour_bars_ask_for_the_60m_interval(chart_server: ChartServer) -> None:
    chart_server.routes[("AAPL", "60m")] = load_chart("chart_AAPL_5m.json")
    yahoo().fetch("AAPL", Timeframe.H1, dt.date(2010, 8, 20), dt.date(2010, 8, 20))
    assert chart_server.requests[0].query["interval"] == "60m"


def test_unknown_symbol_is_not_found_without_retries(chart_server: ChartServer) -> None:
    with pytest.raises(NotFoundError, match="ZZZZ"):
        yahoo().fetch("ZZZZ", Timeframe.D1, DHR_START, DHR_END)
    assert len(chart_server.requests) == 1


def test_server_errors_are_retried_until_success(chart_server: ChartServer) -> None:
    chart_server.fail_next(503, times=2)

    bars = yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    assert len(chart_server.requests) == 3
    assert bars.frame.height == 41


def test_throttling_is_retried(chart_server: ChartServer) -> None:
    chart_server.fail_next(429, times=1)
    yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)
    assert len(chart_server.requests) == 2


def test_persistent_server_error_fails_after_the_configured_attempts(
    chart_server: ChartServer,
) -> None:
    chart_server.fail_next(503, times=100)

    with pytest.raises(ProviderError) as caught:
        yahoo(retries="3").fetch("DHR", Timeframe.D1, DHR_START, DHR_END)

    assert str(caught.value) == "yahoo: DHR failed after 3 attempts: HTTP 503"
    assert len(chart_server.requests) == 3


def test_default_is_four_attempts(chart_server: ChartServer) -> None:
    chart_server.fail_next(500, times=100)
    with pytest.raises(ProviderError, match="after 4 attempts: HTTP 500"):
        yahoo().fetch("DHR", Timeframe.D1, DHR_START, DHR_END)
    assert len(chart_server.requests) == 4


def test_unreachable_server_is_a_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("BREADTHFLOW_YAHOO_BASE_URL", f"http://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    with pytest.raises(ProviderError, match=r"yahoo: DHR failed after 2 attempts: connection"):
        yahoo(retries="2").fetch("DHR", Timeframe.D1, DHR_START, DHR_END)


@pytest.mark.parametrize(("name", "value"), [("retries", "0"), ("retries", "x"), ("backoff", "-1")])
def test_bad_retry_options_are_rejected(name: str, value: str) -> None:
    with pytest.raises(InvalidInputError, match=f"option {name}='{value}'"):
        get_provider("yahoo", get_settings(), {name: value})


def test_yahoo_is_io_bound_and_serves_every_timeframe() -> None:
    provider = get_provider("yahoo", get_settings())
    assert provider.io_bound
    assert provider.timeframes == frozenset(Timeframe)
    assert provider.known_symbols() is None
