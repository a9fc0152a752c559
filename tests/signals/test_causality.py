"""No strategy looks ahead: its signals up to date T are the same whether or not the bars
after T exist.

Parametrised over the registry, so a strategy added later is checked without editing
this file. Every strategy runs with its packaged configuration on the sample (a year of
S&P 500 bars).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.signals import SIGNAL_COLUMNS, STRATEGIES, MarketData, load_strategy_config

CUTS = [dt.date(2009, 12, 15), dt.date(2010, 3, 10), dt.date(2010, 5, 20), dt.date(2010, 7, 30)]
# model_prediction signals only with a trained model: tests/pipelines/test_training.py
# checks its causality with one.
NAMES = sorted(n for n in STRATEGIES if not getattr(STRATEGIES[n], "needs_model", False))


@pytest.fixture(scope="module")
def full_runs(market_data: MarketData) -> dict[str, pl.DataFrame]:
    config = load_strategy_config()
    return {name: config.build(name).generate(market_data) for name in NAMES}


@pytest.mark.parametrize("cut", CUTS, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_signals_up_to_a_date_do_not_depend_on_later_bars(
    name: str, cut: dt.date, market_data: MarketData, full_runs: dict[str, pl.DataFrame]
) -> None:
    truncated = market_data.truncated(cut)
    assert truncated.bars["date"].max() == cut  # the cut is a trading date of the sample

    known_then = load_strategy_config().build(name).generate(truncated)

    expected = full_runs[name].filter(pl.col("date") <= cut)
    assert known_then.filter(pl.col("date") > cut).is_empty()
    assert_frame_equal(known_then, expected, check_exact=True)


@pytest.mark.parametrize("cut", CUTS, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_every_evaluated_row_up_to_a_date_is_unchanged_by_later_bars(
    name: str, cut: dt.date, market_data: MarketData
) -> None:
    """The same on every row ``evaluate`` produces, HOLDs included: a look-ahead in the
    confidence, strength or factors of a quiet day would not show in the signals alone."""
    strategy = load_strategy_config().build(name)

    def rows(data: MarketData) -> pl.DataFrame:
        frame = strategy.evaluate(data).select(SIGNAL_COLUMNS)
        return frame.filter(pl.col("date") <= cut).sort("date", "symbol")

    full = rows(market_data)
    assert full.height > 0
    assert_frame_equal(rows(market_data.truncated(cut)), full, check_exact=True)


@pytest.mark.parametrize("name", NAMES)
def test_causality_check_compares_real_signals(
    name: str, full_runs: dict[str, pl.DataFrame]
) -> None:
    """Without a BUY or SELL before the last cut, the comparison above would prove nothing."""
    early = full_runs[name].filter(pl.col("date") <= CUTS[-1])
    assert early.filter(pl.col("signal_type") != "HOLD").height > 0
