"""Signal services: generate a strategy's signals from stored bars, store, query, export.

One implementation for every interface: the CLI, the API and the pipelines call these.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from breadthflow.core.errors import InvalidInputError, NotFoundError
from breadthflow.core.models import DateRange, Signal, Timeframe
from breadthflow.services.context import AppContext
from breadthflow.services.data import (
    check_output_path,
    resolve_symbols,
    shown_symbols,
    write_frame_atomically,
)
from breadthflow.signals import (
    STRATEGIES,
    Level,
    MarketData,
    Strategy,
    StrategyConfig,
    load_strategy_config,
)
from breadthflow.store.signals import SignalFilter, SignalRepository, StrategySummary

STRATEGY_INPUT_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")
EXPORT_COLUMNS = (
    "symbol", "date", "timeframe", "strategy", "signal_type", "confidence", "strength",
    "factors", "create_time", "pipeline_run_id",
)  # fmt: skip


class SignalBatch(BaseModel):
    """What one ``signals generate`` did."""

    strategy: str
    params: dict[str, Any]
    universe: str
    symbols: int
    timeframe: str
    start: dt.date
    end: dt.date
    pipeline_run_id: str | None
    replaced: int
    stored: int
    counts: dict[str, int]
    latest: list[Signal]
    seconds: float


def strategy_config(ctx: AppContext) -> StrategyConfig:
    """The packaged strategy parameters with the user's file on top."""
    return load_strategy_config(ctx.settings.resolved_strategies_file)


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["window=40", "weights.zbt=0.3"]`` → ``{"window": "40", "weights": {"zbt": "0.3"}}``.

    Values stay text; the strategy's parameter model converts and checks them.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(path):
            raise InvalidInputError(f"invalid --param '{pair}' — expected NAME=VALUE")
        node = params
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidInputError(f"invalid --param '{pair}' — '{part}' is not a table")
            node = child
        node[path[-1]] = value.strip()
    return params


def universe_label(universe: str | None, symbols: Sequence[str]) -> str:
    """The symbol market-level signals are stored under: the universe name, or a stable
    ``custom-<hash>`` for an ad-hoc symbol list (the same list always gets the same label)."""
    if universe:
        return universe.strip()
    digest = hashlib.blake2s(",".join(sorted(symbols)).encode(), digest_size=4).hexdigest()
    return f"custom-{digest}"


def generate_signals(
    ctx: AppContext,
    strategy: str,
    start: str | dt.date,
    end: str | dt.date,
    symbols: str | Sequence[str] | None = None,
    universe: str | None = None,
    params: Mapping[str, Any] | None = None,
    pipeline_run_id: str | None = None,
    hl_window: int = 252,
) -> SignalBatch:
    """Run a strategy over stored daily bars and store its signals for ``start → end``.

    Bars before ``start`` are read as warm-up (the strategy says how many it needs), so
    the first signals already have settled indicators; only signals dated inside the
    range are stored. Regenerating the same strategy, symbols, range and run id replaces
    the stored rows. Everything is checked before anything is written.

    >>> generate_signals(ctx, "breadth_composite", "2010-01-04", "2010-08-20",
    ...                  universe="sample-sp500")                        # doctest: +SKIP
    """
    began = time.perf_counter()
    built = strategy_config(ctx).build(strategy.strip(), dict(params or {}))
    period = DateRange.parse(start, end)
    if isinstance(hl_window, bool) or not isinstance(hl_window, int) or hl_window < 2:
        raise InvalidInputError(
            f"invalid high/low window {hl_window!r} — expected a whole number of days >= 2"
        )
    run_id = _run_id(pipeline_run_id)
    wanted = resolve_symbols(ctx, symbols, universe)
    label = universe_label(universe, wanted)
    what = f"universe '{label}'" if universe else f"symbols {shown_symbols(wanted)}"
    bars, present = read_strategy_bars(ctx, built, wanted, period, what)
    frame = built.generate(MarketData(bars, label, hl_window)).filter(
        pl.col("date").is_between(period.start, period.end)
    )
    batch_symbols = [label] if built.level is Level.MARKET else wanted
    replaced, stored = SignalRepository(ctx.db).replace(
        frame.to_dicts(),
        strategy=built.name,
        timeframe=Timeframe.D1.value,
        start=period.start,
        end=period.end,
        symbols=batch_symbols,
        pipeline_run_id=run_id,
    )
    counts = {t: frame.filter(pl.col("signal_type") == t).height for t in ("BUY", "SELL", "HOLD")}
    latest = SignalRepository(ctx.db).list(
        SignalFilter(
            strategy=built.name,
            timeframe=Timeframe.D1.value,
            pipeline_run_id=run_id or "",
            since=period.start,
            until=period.end,
        ),
        limit=10,
    )
    return SignalBatch(
        strategy=built.name,
        params=built.params.model_dump(),
        universe=label,
        symbols=len(present),
        timeframe=Timeframe.D1.value,
        start=period.start,
        end=period.end,
        pipeline_run_id=run_id,
        replaced=replaced,
        stored=stored,
        counts=counts,
        latest=latest,
        seconds=time.perf_counter() - began,
    )


def read_strategy_bars(
    ctx: AppContext,
    built: Strategy,
    wanted: Sequence[str],
    period: DateRange,
    what: str,
    warmup_bars: int | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """Daily bars of ``wanted`` from ``warmup_bars`` (default: the strategy's own need)
    before ``period.start`` to its end, and the symbols with bars inside the period.

    Refuses (one line) a period without bars, and a strategy that needs breadth on fewer
    than 2 symbols with bars.
    """
    bars_needed = built.warmup_bars() if warmup_bars is None else warmup_bars
    warmup_days = math.ceil(bars_needed * 7 / 5) + 10  # trading → calendar days, + holidays
    bars = ctx.lake.read(
        list(wanted),
        Timeframe.D1,
        period.start - dt.timedelta(days=warmup_days),
        period.end,
        columns=list(STRATEGY_INPUT_COLUMNS),
    )
    in_range = bars.filter(pl.col("date") >= period.start)
    if in_range.height == 0:
        raise NotFoundError(
            f"no 1d bars stored for {what} between {period.start} and {period.end} — "
            "fetch them first with `breadthflow data fetch`"
        )
    present = in_range["symbol"].unique().sort().to_list()
    if built.needs_breadth and len(present) < 2:
        raise InvalidInputError(
            f"strategy {built.name} needs the breadth of at least 2 symbols, but {what} has "
            f"{len(present)} with 1d bars between {period.start} and {period.end} "
            f"({shown_symbols(present)}) — give a larger universe"
        )
    return bars, present


def signal_filter(
    strategy: str | None = None,
    symbol: str | None = None,
    signal_type: str | None = None,
    since: str | dt.date | None = None,
    until: str | dt.date | None = None,
    pipeline_run_id: str | None = None,
) -> SignalFilter:
    """A checked filter from user text (unknown strategy or type, bad dates → one line)."""
    from breadthflow.core.errors import unknown_name
    from breadthflow.core.models import SignalType, parse_date

    if strategy is not None and strategy.strip() not in STRATEGIES:
        raise unknown_name("strategy", strategy.strip(), STRATEGIES)
    kind = None
    if signal_type is not None:
        try:
            kind = SignalType(signal_type.strip().upper())
        except ValueError:
            raise InvalidInputError(
                f"invalid signal type '{signal_type}' — expected BUY, SELL or HOLD"
            ) from None
    first = parse_date(since, "since date") if since is not None else None
    last = parse_date(until, "until date") if until is not None else None
    if first and last and first > last:
        raise InvalidInputError(f"since date {first} is after until date {last} — swap them")
    return SignalFilter(
        strategy=strategy.strip() if strategy else None,
        symbol=symbol.strip() if symbol else None,
        signal_type=kind,
        since=first,
        until=last,
        pipeline_run_id=_run_id(pipeline_run_id),
    )


def list_signals(
    ctx: AppContext, where: SignalFilter | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[Signal], int]:
    """A page of stored signals (newest first) and how many match in all."""
    repo = SignalRepository(ctx.db)
    return repo.list(where, limit=limit, offset=offset), repo.count(where)


def summarize_signals(ctx: AppContext, where: SignalFilter | None = None) -> list[StrategySummary]:
    return SignalRepository(ctx.db).summary(where)


def export_signals(
    ctx: AppContext, output: str | Path, where: SignalFilter | None = None
) -> tuple[Path, int]:
    """Write matching signals to CSV or Parquet (``factors`` as JSON text); the file
    appears complete or not at all. Returns the path and the number of rows."""
    path = check_output_path(output)
    rows = SignalRepository(ctx.db).list(where, limit=None)
    frame = signals_frame(rows)
    write_frame_atomically(frame, path)
    return path, frame.height


def signals_frame(rows: Sequence[Signal]) -> pl.DataFrame:
    """Signals as a flat frame, ``factors`` serialised as JSON text."""
    import json

    schema = {
        "symbol": pl.String, "date": pl.Date, "timeframe": pl.String, "strategy": pl.String,
        "signal_type": pl.String, "confidence": pl.Float64, "strength": pl.Float64,
        "factors": pl.String, "create_time": pl.Datetime("us", "UTC"),
        "pipeline_run_id": pl.String,
    }  # fmt: skip
    records = [
        {
            **r.model_dump(exclude={"factors", "signal_type"}),
            "signal_type": r.signal_type.value,
            "factors": json.dumps(r.factors, sort_keys=True),
        }
        for r in rows
    ]
    return pl.DataFrame(records, schema=schema, orient="row").select(EXPORT_COLUMNS)


def strategy_catalog(ctx: AppContext) -> dict[str, Any]:
    """Every registered strategy with its effective parameters and the config version."""
    config = strategy_config(ctx)
    strategies = []
    for name in sorted(STRATEGIES):
        built = config.build(name)
        strategies.append(
            {
                "name": name,
                "level": built.level.value,
                "emits": "BUY/SELL/HOLD" if built.emits_hold else "BUY/SELL",
                "description": built.description,
                "params": built.params.model_dump(),
            }
        )
    return {"version": config.version, "sources": list(config.sources), "strategies": strategies}


def _run_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    run = value.strip()
    if len(run) > 64 or not run.isprintable():
        raise InvalidInputError(
            f"invalid pipeline run id {run[:70]!r} — expected at most 64 printable characters"
        )
    return run
