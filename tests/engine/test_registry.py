"""Engine selection by BREADTHFLOW_ENGINE, and the Polars engine (the default)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from breadthflow.core.config import load_settings
from breadthflow.core.errors import ConfigError
from breadthflow.engine import open_engine
from breadthflow.engine.polars_engine import PolarsEngine
from breadthflow.engine.spark import SparkEngine, lake_bars_path, s3a_options, spark_master
from breadthflow.indicators.breadth import breadth_table


@pytest.mark.parametrize(
    ("url", "master"),
    [
        ("spark-local", "local[*]"),
        ("spark-local[3]", "local[3]"),
        ("spark-local[*]", "local[*]"),
        ("spark://master.internal:7077", "spark://master.internal:7077"),
    ],
)
def test_spark_values_name_their_master(url: str, master: str) -> None:
    engine = open_engine(url)
    assert isinstance(engine, SparkEngine) and engine.master == master


def test_polars_is_the_default_engine() -> None:
    assert isinstance(open_engine("polars"), PolarsEngine)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("dask", "unknown engine 'dask'"),
        ("spark-local[0]", "spark-local[N] needs N >= 1"),
        ("spark-local[two]", "invalid Spark engine 'spark-local[two]'"),
        ("spark://", "invalid Spark engine"),
        ("polars[2]", "the Polars engine is just 'polars'"),
    ],
)
def test_a_bad_engine_is_one_clear_error(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_engine(url)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_spark_master_refuses_other_values() -> None:
    with pytest.raises(ConfigError, match="expected spark-local"):
        spark_master("local[2]")


def test_the_polars_engine_calls_the_domain_function(sample_bars: pl.DataFrame) -> None:
    engine = open_engine("polars")
    assert_frame_equal(
        engine.breadth_table(sample_bars, hl_window=50), breadth_table(sample_bars, hl_window=50)
    )


@pytest.mark.parametrize(
    ("lake", "path"),
    [
        ("file:///data/lake", "file:///data/lake/bars/timeframe=1d"),
        ("s3://market/bf/", "s3a://market/bf/bars/timeframe=1d"),
        ("s3://market", "s3a://market/bars/timeframe=1d"),
    ],
)
def test_spark_reads_the_lake_where_it_is(lake: str, path: str) -> None:
    assert lake_bars_path(lake) == path


def test_a_lake_spark_cannot_read_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="expected file:// or s3://"):
        lake_bars_path("gs://bucket/x")


def test_s3a_options_follow_the_lake_s3_settings() -> None:
    settings = load_settings(
        lake_url="s3://market/bf", s3_endpoint_url="http://minio:9000",
        s3_access_key_id="key", s3_secret_access_key="secret", s3_region="eu-west-1",
    )  # fmt: skip
    assert s3a_options(settings) == {
        "fs.s3a.endpoint.region": "eu-west-1",
        "fs.s3a.endpoint": "http://minio:9000",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "key",
        "fs.s3a.secret.key": "secret",
    }
    assert s3a_options(load_settings()) == {"fs.s3a.endpoint.region": "us-east-1"}
