"""One local SparkSession for the whole test session (starting a JVM takes seconds)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from breadthflow.engine.spark import get_session

    session = get_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_bars() -> Any:
    """60 real S&P 500 symbols, a year of daily bars (gaps and missing sessions included)."""
    import polars as pl

    from breadthflow.data.providers.sample import load_sample

    bars = load_sample()
    symbols = sorted(bars["symbol"].unique().to_list())[::8][:60]
    return bars.filter(pl.col("symbol").is_in(symbols))
