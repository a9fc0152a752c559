"""The Spark engine gives the Polars engine's results (Spark local mode, 2 cores)."""

from __future__ import annotations

from functools import partial
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.engine import spark as sp
from breadthflow.indicators.breadth import breadth_table
from breadthflow.indicators.technical import add_indicators
from breadthflow.scan.formula import compile_formula
from tests.engine.test_counts import ragged_bars

pytestmark = pytest.mark.slow


def test_breadth_on_spark_equals_the_polars_breadth(spark: Any, sample_bars: pl.DataFrame):
    expected = breadth_table(sample_bars, hl_window=50)
    got = sp.breadth_table(spark, sample_bars, hl_window=50)
    assert_frame_equal(got, expected)  # exact: counts are whole numbers
    assert got["new_highs"].drop_nulls().sum() > 0 and got["zbt"].null_count() < got.height


def test_breadth_on_spark_handles_ragged_shuffled_bars(spark: Any) -> None:
    bars = ragged_bars(seed=3, symbols=12).sample(fraction=1.0, shuffle=True, seed=1)
    for groups in (1, 5):
        got = sp.breadth_table(spark, bars, hl_window=15, groups=groups)
        assert_frame_equal(got, breadth_table(bars, hl_window=15))


def test_breadth_from_a_spark_dataframe(spark: Any, sample_bars: pl.DataFrame) -> None:
    frame = sp.to_spark(spark, sample_bars)
    assert_frame_equal(
        sp.breadth_table(spark, frame, hl_window=50), breadth_table(sample_bars, hl_window=50)
    )


def test_per_symbol_indicators_on_spark_equal_polars(spark: Any, sample_bars: pl.DataFrame):
    names = ["sma_20", "rsi_14", "atr_14"]
    expected = add_indicators(sample_bars.sort("symbol", "date"), names)
    schema = expected.select("symbol", "date", *expected.columns[-3:]).schema
    got = sp.map_symbols(spark, sample_bars.sort("symbol", "date"),
                         partial(add_indicators, names=names), schema)  # fmt: skip
    assert_frame_equal(got.sort("symbol", "date"), expected.select(schema.names()))


@pytest.mark.parametrize(
    "text",
    [
        "close > sma(close, 20) and pct_above_sma50 > 40",  # per symbol, with breadth
        "rank(roc(close, 20)) > 0.8",  # cross-sectional: evaluated on the driver
    ],
)
def test_scan_formulas_on_spark_equal_polars(spark: Any, sample_bars: pl.DataFrame, text: str):
    formula = compile_formula(text)
    breadth = breadth_table(sample_bars, hl_window=50)
    expected = formula.evaluate(sample_bars, breadth)
    got = sp.evaluate_formula(spark, formula, sample_bars, breadth)
    assert_frame_equal(got, expected)
    assert got["match"].sum() > 0


def test_the_breadth_service_runs_on_the_configured_engine(
    spark: Any, sample_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from breadthflow.core.config import load_settings
    from breadthflow.core.models import Timeframe
    from breadthflow.services.breadth import compute_breadth
    from breadthflow.services.context import AppContext

    symbols = sorted(sample_bars["symbol"].unique().to_list())[:20]
    bars = sample_bars.filter(pl.col("symbol").is_in(symbols)).with_columns(
        pl.lit("sample").alias("source"),
        pl.lit(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).alias("ingested_at"),
    )
    AppContext(settings=load_settings(log_json=False)).lake.upsert(bars, Timeframe.D1)

    def breadth(engine: str) -> pl.DataFrame:
        ctx = AppContext(settings=load_settings(engine=engine, log_json=False))
        return compute_breadth(ctx, "2009-08-21", "2010-08-20", symbols=symbols, hl_window=50)

    on_spark, on_polars = breadth("spark-local[2]"), breadth("polars")
    assert on_polars.height > 200
    assert_frame_equal(on_spark, on_polars)

    # A cluster reads the lake itself: same table, no bars through the driver.
    settings = load_settings(log_json=False)
    read = sp.read_lake_bars(spark, settings, "1d", symbols=symbols[:-1],
                             start=dt.date(2009, 9, 1), end=dt.date(2010, 6, 30))  # fmt: skip
    wanted = bars.filter(
        pl.col("symbol").is_in(symbols[:-1])
        & pl.col("date").is_between(dt.date(2009, 9, 1), dt.date(2010, 6, 30))
    )
    assert_frame_equal(
        sp.breadth_table(spark, read, hl_window=50), breadth_table(wanted, hl_window=50)
    )


def test_empty_bars_give_an_empty_table_on_spark(spark: Any, sample_bars: pl.DataFrame):
    empty = sample_bars.head(0)
    assert_frame_equal(sp.breadth_table(spark, empty), breadth_table(empty))


def test_intraday_breadth_on_spark_keeps_utc_timestamps(spark: Any) -> None:
    from breadthflow.core.models import Timeframe
    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    bars = generate_bars(synthetic_symbols(6), "2024-03-04", "2024-03-06", timeframe=Timeframe.M5)
    expected = breadth_table(bars, hl_window=12)
    got = sp.breadth_table(spark, bars, hl_window=12)
    assert got.schema["date"] == bars.schema["date"]
    assert_frame_equal(got, expected)


def test_an_sma_cross_sweep_on_spark_equals_the_polars_sweep(spark: Any) -> None:
    from breadthflow.backtest.config import BacktestConfig
    from breadthflow.backtest.prices import PriceMatrix
    from breadthflow.backtest.sweep import sma_cross_sweep
    from breadthflow.data.providers.synthetic import generate_bars, synthetic_symbols

    bars = generate_bars(synthetic_symbols(12), "2020-01-01", "2021-12-31")
    config = BacktestConfig()
    fast, slow = [5, 10, 20], [30, 50, 100]
    expected = sma_cross_sweep(PriceMatrix.from_bars(bars), fast, slow, config)
    got = sp.sma_cross_sweep(spark, bars, fast, slow, config, groups=3)
    assert_frame_equal(got, expected.sort("fast", "slow", "symbol"))
    assert got.height == 3 * 12 and got["n_trades"].sum() > 0


def test_the_scan_service_evaluates_on_the_configured_engine(
    spark: Any, sample_bars: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_scan` with engine=spark-local: the formula (and its breadth series) run on
    Spark per symbol group; the matches equal the Polars engine's."""
    import datetime as dt

    from breadthflow.core.config import load_settings
    from breadthflow.core.models import Timeframe
    from breadthflow.services.context import AppContext
    from breadthflow.services.scan import run_scan, scan_range

    symbols = sorted(sample_bars["symbol"].unique().to_list())[:20]
    bars = sample_bars.filter(pl.col("symbol").is_in(symbols)).with_columns(
        pl.lit("sample").alias("source"),
        pl.lit(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).alias("ingested_at"),
    )
    AppContext(settings=load_settings(log_json=False)).lake.upsert(bars, Timeframe.D1)
    formula = "close > sma(close, 20) and rsi(close, 14) < 70 and pct_above_sma50 > 30"
    calls: list[int] = []
    real = sp.evaluate_formula

    def counted(*args: Any, **kwargs: Any) -> pl.DataFrame:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sp, "evaluate_formula", counted)

    def scan(engine: str) -> pl.DataFrame:
        ctx = AppContext(settings=load_settings(engine=engine, log_json=False))
        period = scan_range("2010-03-01", "2010-08-20", None)
        outcome = run_scan(ctx, formula, period, ",".join(symbols), None, False, None,
                           hl_window=50, store=False)  # fmt: skip
        return pl.DataFrame(outcome.as_json()["matches"])

    on_spark = scan("spark-local[2]")
    assert calls, "the scan did not run on Spark"
    on_polars = scan("polars")
    assert len(calls) == 1
    assert on_polars.height > 50
    assert_frame_equal(on_spark, on_polars)
