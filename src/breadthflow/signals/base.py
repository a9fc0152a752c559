"""What every strategy shares: its inputs, its output frame, and the registry.

A strategy is a small class with a pydantic ``Params`` model and one pure method,
:meth:`Strategy.evaluate`, that turns :class:`MarketData` (long-format bars plus the
universe's breadth table) into signal rows. Strategies register themselves with
:func:`register`; adding one is adding one class.

Output of :meth:`Strategy.evaluate`, one row per signal:

============== =========================================================================
``symbol``     the stock, or the universe name for market-level strategies
``date``       the bar the signal is known at (its close); never later data
``signal_type`` ``BUY`` | ``SELL`` | ``HOLD``
``confidence`` 0–1, defined per strategy in docs/signals.md
``strength``   the driving measure in its own units (per strategy)
``factors``    a struct of the inputs that drove the decision
============== =========================================================================
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, ClassVar, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from breadthflow.core.errors import InvalidInputError, unknown_name
from breadthflow.core.models import SignalType
from breadthflow.indicators.breadth import SMA_TIE_TOLERANCE, breadth_table

SIGNAL_COLUMNS = ("symbol", "date", "signal_type", "confidence", "strength", "factors")
SIGNAL_TYPES = tuple(t.value for t in SignalType)


class Level(StrEnum):
    """Whether a strategy judges the market as a whole or each symbol."""

    MARKET = "market"
    SYMBOL = "symbol"


@dataclass(frozen=True)
class MarketData:
    """Inputs of a strategy: daily bars of a universe and, computed on demand, its breadth.

    ``bars`` is long format (``symbol, date, open, high, low, close, volume``); it is
    sorted here by ``(symbol, date)``, which the per-symbol window expressions rely on.
    ``universe`` names the universe; market-level signals use it as their symbol.
    """

    bars: pl.DataFrame
    universe: str
    hl_window: int = 252
    _sorted: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self._sorted:
            object.__setattr__(self, "bars", self.bars.sort("symbol", "date"))
            object.__setattr__(self, "_sorted", True)

    @cached_property
    def breadth(self) -> pl.DataFrame:
        """The universe's breadth table (docs/breadth.md), one row per date."""
        return breadth_table(self.bars, hl_window=self.hl_window)

    def truncated(self, last: dt.date) -> MarketData:
        """The same data as it was known at the close of ``last`` (for causality checks)."""
        return MarketData(
            self.bars.filter(pl.col("date") <= last), self.universe, self.hl_window, True
        )


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown names are errors, values are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy(ABC):
    """A registered, parameterised signal generator. Subclasses set the class variables
    and implement :meth:`evaluate`; they never read files, the DB or the clock."""

    name: ClassVar[str]
    level: ClassVar[Level]
    description: ClassVar[str]
    Params: ClassVar[type[StrategyParams]]
    # Market-level state classifiers emit a row every date (HOLD included); event
    # strategies emit rows only where something happens.
    emits_hold: ClassVar[bool] = False

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @property
    def needs_breadth(self) -> bool:
        return self.level is Level.MARKET

    @abstractmethod
    def warmup_bars(self) -> int:
        """Bars of history before the first wanted date that the inputs need to settle."""

    @abstractmethod
    def evaluate(self, data: MarketData) -> pl.DataFrame:
        """Signal rows (see the module docstring) for every date of ``data``."""

    def generate(self, data: MarketData) -> pl.DataFrame:
        """:meth:`evaluate`, checked and put in canonical order: by date, then symbol."""
        frame = self.evaluate(data)
        missing = [c for c in SIGNAL_COLUMNS if c not in frame.columns]
        if missing:  # a bug in the strategy, not a user error
            raise TypeError(f"strategy {self.name} returned no {', '.join(missing)}")
        frame = frame.select(SIGNAL_COLUMNS).filter(pl.col("signal_type").is_not_null())
        if not self.emits_hold:
            frame = frame.filter(pl.col("signal_type") != SignalType.HOLD.value)
        confidence = pl.col("confidence")
        bad = frame.filter(~confidence.is_between(0.0, 1.0) | confidence.is_null())
        if bad.height:
            raise ValueError(f"strategy {self.name} produced confidence outside 0–1: {bad.head(3)}")
        return frame.with_columns(
            pl.col("confidence").cast(pl.Float64), pl.col("strength").cast(pl.Float64)
        ).sort("date", "symbol")


STRATEGIES: dict[str, type[Strategy]] = {}
_S = TypeVar("_S", bound=type[Strategy])


def register(cls: _S) -> _S:
    """Class decorator: make a strategy available by its ``name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"strategy {cls.name!r} registered twice")
    STRATEGIES[cls.name] = cls
    return cls


def strategy_class(name: str) -> type[Strategy]:
    key = name.strip()
    if key not in STRATEGIES:
        raise unknown_name("strategy", key, STRATEGIES)
    return STRATEGIES[key]


def build_strategy(name: str, *layers: Mapping[str, Any]) -> Strategy:
    """The named strategy with parameters merged from ``layers`` (later wins; nested
    tables such as ``weights`` merge key by key) and validated by its ``Params`` model.

    >>> build_strategy("rsi_reversion", {"oversold": "25"}).params.oversold
    25.0
    """
    cls = strategy_class(name)
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = merge_params(merged, dict(layer))
    try:
        params = cls.Params.model_validate(merged)
    except ValidationError as exc:
        raise InvalidInputError(_param_error(cls, exc)) from None
    return cls(params)


def convert_param(name: str, parameter: str, value: Any) -> Any:
    """One parameter value converted and range-checked on its own (``"10"`` → 10), for
    grids whose combinations are checked later. Unknown names are refused.

    >>> convert_param("sma_cross", "fast", "12")
    12
    """
    cls = strategy_class(name)
    fields = cls.Params.model_fields
    if parameter not in fields:
        known = ", ".join(fields)
        raise InvalidInputError(
            f"unknown parameter '{parameter}' for strategy {cls.name} — known: {known}"
        )
    info = fields[parameter]
    try:
        return TypeAdapter(Annotated[info.annotation, info]).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].lower()
        raise InvalidInputError(
            f"invalid parameter {parameter}={value!r} for strategy {cls.name} — {reason}"
        ) from None


def merge_params(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested tables (``weights``) merge key by key."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge_params(dict(result[key]), dict(value))
        else:
            result[key] = value
    return result


def _param_error(cls: type[Strategy], exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    known = ", ".join(cls.Params.model_fields)
    if first["type"] == "extra_forbidden":
        return f"unknown parameter '{where}' for strategy {cls.name} — known: {known}"
    if first["type"] == "value_error":  # a model validator: the message names the fields
        reason = first["msg"].removeprefix("Value error, ")
        return f"invalid parameters for strategy {cls.name}: {reason}"
    value = first.get("input")
    return f"invalid parameter {where}={value!r} for strategy {cls.name} — {first['msg'].lower()}"


# --- helpers shared by strategies -----------------------------------------------------------


def _previous(x: pl.Expr, by: str | None) -> pl.Expr:
    return x.shift(1).over(by) if by else x.shift(1)


def _exceeds(a: pl.Expr, b: pl.Expr | float) -> pl.Expr:
    """``a > b`` by more than rounding: within SMA_TIE_TOLERANCE (relative) is a tie. Prices
    quoted in cents meet their moving averages exactly often enough that float rounding must
    not decide a cross (the breadth table's rule, docs/breadth.md)."""
    scale = b.abs() if isinstance(b, pl.Expr) else abs(b)
    return (a - b) > SMA_TIE_TOLERANCE * scale


def crossed_above(x: pl.Expr, level: pl.Expr | float, by: str | None = None) -> pl.Expr:
    """True where ``x`` is above ``level`` now and was at or below it on the previous bar
    (of the same ``by`` group). Null where either bar lacks a value. A tie (equal within
    rounding) is not above."""
    before = _previous(level, by) if isinstance(level, pl.Expr) else level
    return _exceeds(x, level) & ~_exceeds(_previous(x, by), before)


def crossed_below(x: pl.Expr, level: pl.Expr | float, by: str | None = None) -> pl.Expr:
    """True where ``x`` is below ``level`` now and was at or above it on the previous bar.
    A tie (equal within rounding) is not below."""
    before = _previous(level, by) if isinstance(level, pl.Expr) else level
    return _exceeds(level, x) & ~_exceeds(before, _previous(x, by))


def signal_type(buy: pl.Expr, sell: pl.Expr) -> pl.Expr:
    """``BUY`` where ``buy`` is true, ``SELL`` where ``sell`` is, ``HOLD`` elsewhere
    (a null condition counts as false)."""
    return (
        pl.when(buy)
        .then(pl.lit(SignalType.BUY.value))
        .when(sell)
        .then(pl.lit(SignalType.SELL.value))
        .otherwise(pl.lit(SignalType.HOLD.value))
    )
