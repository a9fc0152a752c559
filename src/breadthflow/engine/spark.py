"""The Spark engine: per-symbol work on Apache Spark, through the same domain functions.

``BREADTHFLOW_ENGINE=spark-local[4]`` (Spark in this process, 4 cores; ``spark-local`` =
every core) or ``spark://master:7077`` (a standalone cluster; docs/scale-out.md).

Nothing here re-implements a formula. Spark only moves data: bars are split into groups of
whole symbols (``groupBy(bucket).applyInArrow``), each group arrives in a Python worker as
an Arrow table, becomes a Polars frame without a copy (``pl.from_arrow``), goes through the
same pure function as the Polars engine, and goes back as Arrow:

- breadth: :func:`~breadthflow.indicators.breadth.breadth_counts` per group, counts added
  per date by Spark, then :func:`~breadthflow.indicators.breadth.breadth_from_counts` on
  the driver (a few thousand rows) — identical to ``breadth_table`` (the counts are whole
  numbers; float volumes add up in another order, which can move the last bit);
- anything per symbol (indicators, scan formulas, per-symbol backtests):
  :func:`map_symbols` runs ``fn(frame_of_some_symbols)`` per group.

The driver needs Java 17+ and ``pyspark``; workers need the same Python environment
(``PYSPARK_PYTHON``; in local mode it defaults to this interpreter).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

import polars as pl

from breadthflow.core.errors import ConfigError, InvalidInputError
from breadthflow.indicators.breadth import COUNT_COLUMNS, breadth_counts, breadth_from_counts

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

    from breadthflow.backtest.config import BacktestConfig
    from breadthflow.core.config import Settings
    from breadthflow.scan.formula import Formula

_LOCAL = re.compile(r"^spark-local(?:\[(?P<cores>\d+|\*)\])?$")
BUCKET = "__bf_bucket"
#: Spark reads and writes timestamps in this zone: UTC, like the lake.
SESSION_TIME_ZONE = "UTC"
BREADTH_INPUT = ("symbol", "date", "close", "volume")
#: Symbol groups per core: enough that a slow group does not hold a core up alone, few
#: enough that per-group overhead (a Python call, an Arrow batch) stays small.
GROUPS_PER_CORE = 4

_LOCK = threading.Lock()


def spark_master(engine: str) -> str:
    """``spark-local[2]`` → ``local[2]``, ``spark-local`` → ``local[*]``,
    ``spark://h:7077`` → itself; anything else is a :class:`ConfigError`."""
    text = engine.strip()
    local = _LOCAL.match(text)
    if local:
        cores = local.group("cores") or "*"
        if cores != "*" and int(cores) < 1:
            raise ConfigError(f"invalid engine '{engine}' — spark-local[N] needs N >= 1")
        return f"local[{cores}]"
    if text.startswith("spark://") and len(text) > len("spark://"):
        return text
    raise ConfigError(
        f"invalid Spark engine '{engine}' (BREADTHFLOW_ENGINE) — expected spark-local, "
        "spark-local[N] or spark://host:7077"
    )


def get_session(master: str, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The process's SparkSession for ``master`` (created once; Spark allows one per JVM).

    Arrow is on, time is UTC (daily dates and intraday timestamps must not move), and
    in local mode the workers run this interpreter. More settings come from
    ``$SPARK_CONF_DIR/spark-defaults.conf`` or ``PYSPARK_SUBMIT_ARGS`` as usual.
    """
    with _LOCK:
        try:
            from pyspark.sql import SparkSession
        except ImportError:  # pragma: no cover - pyspark is a dev dependency
            raise ConfigError(
                "the Spark engine needs pyspark — pip install pyspark (4.x) and Java 17+"
            ) from None
        if master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(master)
            .appName("breadthflow")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.session.timeZone", SESSION_TIME_ZONE)
            .config("spark.sql.shuffle.partitions", str(_default_partitions(master)))
            .config("spark.ui.showConsoleProgress", "false")
        )
        if master.startswith("local"):
            builder = builder.config("spark.ui.enabled", "false")
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        return builder.getOrCreate()  # the running session, if there is one


def _default_partitions(master: str) -> int:
    found = re.match(r"^local\[(\d+)\]$", master)
    cores = int(found.group(1)) if found else (os.cpu_count() or 2)
    return max(2, cores * GROUPS_PER_CORE)


# --- Polars <-> Spark, through Arrow -------------------------------------------------------


def to_spark(spark: SparkSession, frame: pl.DataFrame) -> SparkFrame:
    """A Spark DataFrame of a Polars frame (Arrow, no row-by-row conversion)."""
    # Plain (large_)string and no view types: what Spark's Arrow reader accepts.
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    return spark.createDataFrame(table)


@contextlib.contextmanager
def handed_over(spark: SparkSession, frame: pl.DataFrame) -> Iterator[SparkFrame]:
    """A Polars frame as a Spark DataFrame for the length of a job.

    In local mode through a temporary Parquet file, which Spark scans natively (measured
    about twice as fast as ``createDataFrame`` from Arrow, which ships 10,000-row batches
    through the driver); on a cluster, whose executors cannot see the driver's disk, with
    :func:`to_spark`. A cluster job should read the lake itself instead (docs/scale-out.md).
    """
    if not spark.sparkContext.master.startswith("local"):
        yield to_spark(spark, frame)
        return
    with tempfile.TemporaryDirectory(prefix="breadthflow-spark-") as folder:
        path = os.path.join(folder, "bars.parquet")
        frame.write_parquet(path, compression="uncompressed")
        yield spark.read.parquet(path)


def to_polars(frame: SparkFrame) -> pl.DataFrame:
    """Collect a Spark DataFrame into Polars (Arrow end to end)."""
    return pl.from_arrow(frame.toArrow())  # type: ignore[return-value]


def _arrow_out(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A Polars result as the Arrow table Spark expects (types cast to ``schema``)."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    return table.select(schema.names).cast(schema)


def _bucketed(frame: SparkFrame, groups: int) -> SparkFrame:
    from pyspark.sql import functions as F

    return frame.withColumn(BUCKET, F.pmod(F.xxhash64("symbol"), F.lit(groups)))


# --- reading the lake from Spark (no bars through the driver) ------------------------------


def lake_bars_path(lake_url: str, timeframe: str = "1d") -> str:
    """Where Spark finds the lake's bars of ``timeframe``: ``file:///data/lake`` →
    ``file:///data/lake/bars/timeframe=1d``, ``s3://bucket/prefix`` →
    ``s3a://bucket/prefix/bars/timeframe=1d`` (Hadoop's S3 connector)."""
    parts = urlsplit(lake_url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        root = Path(url2pathname(parts.path) if scheme else lake_url).resolve().as_uri()
    elif scheme in ("s3", "s3a"):
        if not parts.netloc:
            raise ConfigError(f"invalid lake URL '{lake_url}' — expected s3://bucket/prefix")
        root = f"s3a://{parts.netloc}{parts.path.rstrip('/')}"
    else:
        raise ConfigError(
            f"the Spark engine cannot read lake '{lake_url}' — expected file:// or s3://"
        )
    return f"{root.rstrip('/')}/bars/timeframe={timeframe}"


def s3a_options(settings: Settings) -> dict[str, str]:
    """Hadoop S3A settings for the lake's S3 settings (``s3_endpoint_url`` for MinIO,
    region, keys; without keys the AWS default chain applies)."""
    options = {"fs.s3a.endpoint.region": settings.s3_region}
    if settings.s3_endpoint_url:
        options["fs.s3a.endpoint"] = settings.s3_endpoint_url
        options["fs.s3a.path.style.access"] = "true"  # MinIO serves buckets as paths
        options["fs.s3a.connection.ssl.enabled"] = str(
            settings.s3_endpoint_url.lower().startswith("https")
        ).lower()
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        options["fs.s3a.access.key"] = settings.s3_access_key_id
        options["fs.s3a.secret.key"] = settings.s3_secret_access_key.get_secret_value()
    return options


def read_lake_bars(
    spark: SparkSession,
    settings: Settings,
    timeframe: str = "1d",
    symbols: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    columns: tuple[str, ...] = BREADTH_INPUT,
) -> SparkFrame:
    """The lake's bars as a Spark DataFrame, read by the executors themselves (the layout
    is a hive dataset: ``symbol=`` folders prune to the wanted symbols)."""
    from pyspark.sql import functions as F

    path = lake_bars_path(settings.resolved_lake_url, timeframe)
    if path.startswith("s3a://"):
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
        for key, value in s3a_options(settings).items():
            hadoop.set(key, value)
    frame = spark.read.parquet(path)
    if symbols is not None:
        frame = frame.where(F.col("symbol").isin(list(symbols)))
    day = F.col("date").cast("date")  # a session date, or the UTC day of an intraday bar
    if start is not None:
        frame = frame.where(day >= F.lit(start))
    if end is not None:
        frame = frame.where(day <= F.lit(end))
    return frame.select(*columns)


# --- work per group of symbols -------------------------------------------------------------


def map_symbols(
    spark: SparkSession,
    bars: pl.DataFrame | SparkFrame,
    fn: Callable[[pl.DataFrame], pl.DataFrame],
    schema: Mapping[str, pl.DataType] | pl.Schema,
    groups: int | None = None,
) -> pl.DataFrame:
    """``fn`` applied to the bars of each group of whole symbols, results concatenated.

    ``fn`` is a pure Polars function that is correct on any set of whole symbols (every
    per-symbol indicator, a scan formula that is not cross-sectional, a per-symbol
    backtest); it must be picklable (a module-level function or a ``functools.partial``
    of one). ``schema`` is the schema of its output. Row order of the result is not
    defined: sort it.

    >>> map_symbols(spark, bars, add_sma20, {"symbol": pl.String, "date": pl.Date,
    ...             "sma20": pl.Float64})  # doctest: +SKIP
    """
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    if isinstance(bars, pl.DataFrame):
        with handed_over(spark, bars) as frame:
            return map_symbols(spark, frame, fn, schema, groups)
    frame = bars
    empty = pl.DataFrame(schema=dict(schema)).to_arrow(compat_level=pl.CompatLevel.oldest())
    # Through Spark's types and back: the Arrow types Spark checks results against
    # (string, not large_string).
    spark_schema = from_arrow_schema(empty.schema)
    arrow_schema = to_arrow_schema(spark_schema, timezone=SESSION_TIME_ZONE)
    columns = [c for c in frame.columns if c != BUCKET]
    count = groups or int(spark.conf.get("spark.sql.shuffle.partitions") or 8)

    def per_group(table: pa.Table) -> pa.Table:
        chunk = pl.from_arrow(table.select(columns))
        assert isinstance(chunk, pl.DataFrame)
        return _arrow_out(fn(chunk), arrow_schema)

    result = _bucketed(frame, count).groupBy(BUCKET).applyInArrow(per_group, schema=spark_schema)
    return to_polars(result)


def breadth_table(
    spark: SparkSession,
    bars: pl.DataFrame | SparkFrame,
    hl_window: int = 252,
    groups: int | None = None,
) -> pl.DataFrame:
    """The breadth table of ``bars`` computed on Spark — equal to
    :func:`breadthflow.indicators.breadth.breadth_table` of the same bars.

    Each group of symbols is counted by ``breadth_counts`` in a Spark Python worker,
    Spark adds the counts per date, and ``breadth_from_counts`` finishes on the driver.
    """
    if isinstance(hl_window, bool) or not isinstance(hl_window, int) or hl_window < 2:
        raise InvalidInputError(f"invalid hl_window {hl_window!r} — expected an integer >= 2")
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    if isinstance(bars, pl.DataFrame):
        missing = [c for c in BREADTH_INPUT if c not in bars.columns]
        if missing:
            raise InvalidInputError(f"bars lack column(s) {', '.join(missing)}")
        with handed_over(spark, bars.select(BREADTH_INPUT)) as handed:
            table = breadth_table(spark, handed, hl_window, groups)
        date_dtype = bars.schema["date"]
        if table.schema["date"] != date_dtype:  # e.g. a timestamp unit Spark changed
            table = table.with_columns(pl.col("date").cast(date_dtype))
        return table
    frame = bars.select(*BREADTH_INPUT)
    counts_schema = _counts_schema(frame)
    count = groups or int(spark.conf.get("spark.sql.shuffle.partitions") or 8)

    def per_group(table: pa.Table) -> pa.Table:
        chunk = pl.from_arrow(table.select(list(BREADTH_INPUT)))
        assert isinstance(chunk, pl.DataFrame)
        return _arrow_out(breadth_counts(chunk, hl_window), counts_schema)

    counted = (
        _bucketed(frame, count)
        .groupBy(BUCKET)
        .applyInArrow(per_group, schema=from_arrow_schema(counts_schema))
    )
    summed = counted.groupBy("date").agg(*(F.sum(c).alias(c) for c in COUNT_COLUMNS))
    return breadth_from_counts(to_polars(summed))


def _counts_schema(frame: SparkFrame) -> pa.Schema:
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_type

    date_type = to_arrow_type(frame.schema["date"].dataType, timezone=SESSION_TIME_ZONE)
    return pa.schema([("date", date_type), *((c, pa.float64()) for c in COUNT_COLUMNS)])


def evaluate_formula(
    spark: SparkSession,
    formula: Formula,
    bars: pl.DataFrame,
    breadth: pl.DataFrame | None = None,
    groups: int | None = None,
) -> pl.DataFrame:
    """``formula.evaluate(bars, breadth)`` with the symbols split across Spark workers.

    The breadth table (one row per date) travels with each group; a cross-sectional
    formula (``rank``/``percentile``) needs every symbol of a date together and is
    evaluated on the driver instead. Same output as ``Formula.evaluate``, sorted by
    ``(symbol, date)``.
    """
    if formula.cross_sectional:
        return formula.evaluate(bars, breadth)
    sample = formula.evaluate(bars.head(0), breadth.head(0) if breadth is not None else None)
    text = formula.text

    result = map_symbols(spark, bars, _FormulaOnGroup(text, breadth), sample.schema, groups=groups)
    return result.sort("symbol", "date")


def sma_cross_sweep(
    spark: SparkSession,
    bars: pl.DataFrame,
    fast: list[int],
    slow: list[int],
    config: BacktestConfig,
    groups: int | None = None,
) -> pl.DataFrame:
    """:func:`breadthflow.backtest.sweep.sma_cross_sweep` (every symbol in its own
    account) with the symbols split across Spark workers; rows sorted by
    ``(fast, slow, symbol)``.

    Identical to the Polars sweep when the symbols share one calendar (one exchange's
    sessions): Sharpe and exposure are averaged over the dates of the price matrix, and a
    group's matrix has only its own symbols' dates.
    """
    fn = _SweepOnGroup(list(fast), list(slow), config)
    if bars.height == 0:
        return fn(bars)
    # The output schema, from the sweep itself on one symbol (cheap, on the driver).
    first = bars.get_column("symbol")[0]
    schema = fn(bars.filter(pl.col("symbol") == first)).schema
    table = map_symbols(spark, bars, fn, schema, groups=groups)
    return table.sort("fast", "slow", "symbol")


class _SweepOnGroup:
    """Picklable: the grid and the config travel to the workers."""

    def __init__(self, fast: list[int], slow: list[int], config: BacktestConfig) -> None:
        self.fast, self.slow, self.config = fast, slow, config

    def __call__(self, chunk: pl.DataFrame) -> pl.DataFrame:
        from breadthflow.backtest.prices import PriceMatrix
        from breadthflow.backtest.sweep import sma_cross_sweep as sweep

        return sweep(PriceMatrix.from_bars(chunk), self.fast, self.slow, self.config)


class _FormulaOnGroup:
    """Picklable: the formula travels as its text (compiled again in the worker, like
    :meth:`Formula.__reduce__`), the breadth table as a Polars frame."""

    def __init__(self, text: str, breadth: pl.DataFrame | None) -> None:
        self.text = text
        self.breadth = breadth

    def __call__(self, chunk: pl.DataFrame) -> pl.DataFrame:
        from breadthflow.scan.formula import compile_formula

        return compile_formula(self.text).evaluate(chunk, self.breadth)


class SparkEngine:
    """The engine for ``spark-local[N]`` and ``spark://…`` (see the module docstring)."""

    name = "spark"

    def __init__(self, url: str, conf: Mapping[str, str] | None = None) -> None:
        self.url = url.strip()
        self.master = spark_master(self.url)
        self.conf = dict(conf or {})

    @classmethod
    def from_url(cls, url: str) -> SparkEngine:
        return cls(url)

    @property
    def session(self) -> SparkSession:
        return get_session(self.master, self.conf)

    def describe(self) -> str:
        return f"spark (master {self.master})"

    def breadth_table(self, bars: pl.DataFrame, hl_window: int = 252) -> pl.DataFrame:
        return breadth_table(self.session, bars, hl_window)

    def map_symbols(
        self,
        bars: pl.DataFrame,
        fn: Callable[[pl.DataFrame], pl.DataFrame],
        schema: Mapping[str, pl.DataType] | pl.Schema,
    ) -> pl.DataFrame:
        return map_symbols(self.session, bars, fn, schema)

    def evaluate_formula(
        self, formula: Formula, bars: pl.DataFrame, breadth: pl.DataFrame | None = None
    ) -> pl.DataFrame:
        return evaluate_formula(self.session, formula, bars, breadth)
