"""The synthetic provider: seeded, path-independent, correlated, consistent OHLCV."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest

from breadthflow.core.config import get_settings
from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe
from breadthflow.data.providers import PROVIDER_COLUMNS, get_provider
from breadthflow.data.providers.synthetic import (
    EPOCH,
    SECTORS,
    generate_bars,
    synthetic_sector,
    synthetic_symbols,
)
from breadthflow.data.quality import provider_schema, validate_bars

START, END = dt.date(2020, 1, 1), dt.date(2020, 12, 31)


def fetch(symbol: str, start: dt.date, end: dt.date, timeframe=Timeframe.D1, seed: int = 42):
    provider = get_provider("synthetic", get_settings(), {"seed": str(seed)})
    return provider.fetch(symbol, timeframe, start, end).frame


def log_returns(bars: pl.DataFrame) -> np.ndarray:
    """Daily log-returns, one column per symbol (in the order of first appearance)."""
    wide = (
        bars.with_columns(pl.col("close").log().diff().over("symbol").alias("r"))
        .drop_nulls("r")
        .pivot(on="symbol", index="date", values="r")
        .drop("date")
    )
    return wide.to_numpy()


# --- reproducibility ---------------------------------------------------------------------


def test_same_seed_gives_identical_bars() -> None:
    assert fetch("SYN00001", START, END).equals(fetch("SYN00001", START, END))


def test_different_seed_gives_different_bars() -> None:
    a, b = fetch("SYN00001", START, END, seed=42), fetch("SYN00001", START, END, seed=43)
    assert a["date"].equals(b["date"])
    assert not a["close"].equals(b["close"])


def test_a_bar_does_not_depend_on_the_requested_range() -> None:
    long = fetch("SYN00042", dt.date(2001, 1, 1), dt.date(2024, 12, 31))
    for start, end in [
        (dt.date(2017, 3, 4), dt.date(2017, 3, 19)),  # starts on a Saturday
        (dt.date(2024, 12, 30), dt.date(2024, 12, 31)),
        (dt.date(2002, 10, 9), dt.date(2002, 10, 9)),
    ]:
        short = fetch("SYN00042", start, end)
        assert short.height > 0
        assert short.equals(long.filter(pl.col("date").is_between(start, end)))


def test_generate_bars_equals_per_symbol_fetch() -> None:
    symbols = ["SYN00003", "AAPL", "SYN00001", "BRK.B"]
    together = generate_bars(symbols, START, END, seed=7)
    one_by_one = pl.concat([fetch(s, START, END, seed=7) for s in symbols])
    assert together.equals(one_by_one)
    assert together["symbol"].unique(maintain_order=True).to_list() == symbols


def test_generate_bars_equals_fetch_across_batches() -> None:
    symbols = synthetic_symbols(600)  # more than one vectorised batch (run in threads)
    together = generate_bars(symbols, START, dt.date(2020, 3, 31))
    for symbol in ("SYN00001", "SYN00300", "SYN00600"):
        alone = fetch(symbol, START, dt.date(2020, 3, 31))
        assert together.filter(pl.col("symbol") == symbol).equals(alone)


def test_seed_option_is_validated() -> None:
    with pytest.raises(InvalidInputError, match="seed 'abc'"):
        get_provider("synthetic", get_settings(), {"seed": "abc"})
    default = get_provider("synthetic", get_settings())
    assert default.fetch("X", Timeframe.D1, START, END).frame.equals(fetch("X", START, END))


# --- calendar and shape ------------------------------------------------------------------


def test_bars_are_on_weekdays_with_the_provider_schema() -> None:
    bars = fetch("SYN00001", START, END)
    assert tuple(bars.columns) == PROVIDER_COLUMNS
    assert bars.schema == pl.Schema(provider_schema(Timeframe.D1))
    assert bars["date"].is_sorted()
    assert bars.height == 262  # weekdays of 2020
    assert bars["date"].dt.weekday().max() <= 5
    assert (bars["date"].min(), bars["date"].max()) == (dt.date(2020, 1, 1), dt.date(2020, 12, 31))


def test_nothing_exists_before_the_epoch_or_on_a_weekend() -> None:
    assert fetch("SYN00001", dt.date(1999, 1, 1), dt.date(1999, 12, 31)).height == 0
    assert fetch("SYN00001", dt.date(2020, 1, 4), dt.date(2020, 1, 5)).height == 0
    first = fetch("SYN00001", dt.date(1990, 1, 1), dt.date(2000, 1, 7))
    assert first["date"][0] == EPOCH


def test_ohlc_is_consistent_and_volume_positive() -> None:
    bars = generate_bars(synthetic_symbols(50), dt.date(2000, 1, 3), dt.date(2004, 12, 31))
    assert (
        bars.filter(
            (pl.col("low") > pl.min_horizontal("open", "close"))
            | (pl.col("high") < pl.max_horizontal("open", "close"))
            | (pl.col("low") <= 0)
            | (pl.col("volume") <= 0)
        ).height
        == 0
    )
    clean, issues = validate_bars(bars, Timeframe.D1, "synthetic")
    assert issues == [] and clean.height == bars.height
    first_close = bars.group_by("symbol").agg(pl.col("close").first())["close"]
    assert first_close.min() > 10 and first_close.max() < 700  # start prices 20–500


def test_synthetic_symbols_are_zero_padded() -> None:
    assert synthetic_symbols(3) == ["SYN00001", "SYN00002", "SYN00003"]
    assert synthetic_symbols(12_345)[-1] == "SYN12345"
    assert synthetic_symbols(0) == []


# --- statistical structure ---------------------------------------------------------------


def test_symbols_are_correlated_more_within_a_sector() -> None:
    symbols = synthetic_symbols(60)
    corr = np.corrcoef(log_returns(generate_bars(symbols, START, dt.date(2023, 12, 31))).T)
    sectors = [synthetic_sector(s) for s in symbols]
    pairs = [(i, j) for i in range(60) for j in range(i + 1, 60)]
    within = [corr[i, j] for i, j in pairs if sectors[i] == sectors[j]]
    across = [corr[i, j] for i, j in pairs if sectors[i] != sectors[j]]
    assert min(across + within) > 0  # the market factor moves everyone
    assert np.mean(within) > np.mean(across) + 0.05


def test_sector_comes_from_a_stable_hash_of_the_symbol() -> None:
    sectors = [synthetic_sector(s) for s in synthetic_symbols(300)]
    assert set(sectors) == set(SECTORS)
    assert synthetic_sector("AAPL") == "Materials"
    # BLAKE2b, not the per-process salted hash(): the same answer in another process.
    probe = (
        "from breadthflow.data.providers.synthetic import synthetic_sector as s; print(s('AAPL'))"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "Materials"


def test_generated_values_are_pinned() -> None:
    """A golden bar: changing the model, the stream layout or the hashing changes it.
    That rewrites every synthetic data set users have stored, so it must be deliberate."""
    bar = fetch("SYN00001", dt.date(2020, 1, 2), dt.date(2020, 1, 2)).row(0)
    assert bar == ("SYN00001", dt.date(2020, 1, 2), 53.7153, 53.8247, 51.1539, 53.7786,
                   596638.0, 1.0)  # fmt: skip


def test_returns_have_fat_tails() -> None:
    returns = log_returns(generate_bars(synthetic_symbols(20), EPOCH, dt.date(2019, 12, 31)))
    z = (returns - returns.mean(axis=0)) / returns.std(axis=0)
    assert (z**4).mean() > 3.2  # a normal distribution's kurtosis is 3
    volume = generate_bars(["SYN00001"], EPOCH, dt.date(2019, 12, 31))
    moves = np.abs(np.diff(np.log(volume["close"].to_numpy())))
    assert np.corrcoef(moves, np.log(volume["volume"].to_numpy()[1:]))[0, 1] > 0.1


# --- intraday ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeframe", "per_day", "last_start"),
    [
        (Timeframe.M1, 390, dt.time(20, 59)),
        (Timeframe.M5, 78, dt.time(20, 55)),
        (Timeframe.M15, 26, dt.time(20, 45)),
        (Timeframe.H1, 7, dt.time(20, 30)),
    ],
)
def test_intraday_bars_aggregate_to_the_daily_bar(
    timeframe: Timeframe, per_day: int, last_start: dt.time
) -> None:
    start, end = dt.date(2021, 3, 1), dt.date(2021, 3, 5)
    intraday = fetch("SYN00009", start, end, timeframe)
    daily = fetch("SYN00009", start, end)

    assert intraday.schema == pl.Schema(provider_schema(timeframe))
    assert intraday.height == per_day * daily.height
    times = intraday["date"].dt.time()
    assert (times.min(), times.max()) == (dt.time(14, 30), last_start)
    aggregated = (
        intraday.group_by(pl.col("date").dt.date())
        .agg(
            pl.col("symbol").first(),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("adj_factor").first(),
        )
        .sort("date")
        .select(PROVIDER_COLUMNS)
    )
    assert aggregated.equals(daily)
    assert (
        intraday.filter(
            (pl.col("low") > pl.min_horizontal("open", "close"))
            | (pl.col("high") < pl.max_horizontal("open", "close"))
        ).height
        == 0
    )


def test_intraday_bars_do_not_depend_on_the_requested_range() -> None:
    week = fetch("SYN00002", dt.date(2022, 6, 6), dt.date(2022, 6, 10), Timeframe.M15)
    day = fetch("SYN00002", dt.date(2022, 6, 8), dt.date(2022, 6, 8), Timeframe.M15)
    assert day.equals(week.filter(pl.col("date").dt.date() == dt.date(2022, 6, 8)))


def test_coarser_intraday_bars_aggregate_finer_ones() -> None:
    day = dt.date(2022, 6, 8)
    five = fetch("SYN00002", day, day, Timeframe.M5)
    fifteen = fetch("SYN00002", day, day, Timeframe.M15)
    regrouped = (
        five.group_by_dynamic("date", every="15m", group_by="symbol")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("adj_factor").first(),
        )
        .select(PROVIDER_COLUMNS)
    )
    assert regrouped.equals(fifteen)


# --- speed -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_large_universe_generates_quickly() -> None:
    symbols = synthetic_symbols(1_000)
    began = time.perf_counter()
    bars = generate_bars(symbols, dt.date(2015, 1, 1), dt.date(2024, 8, 30))
    elapsed = time.perf_counter() - began
    assert bars.height == 1_000 * 2_522
    assert elapsed < 15  # about 1 s on a laptop; generous for a loaded CI machine
