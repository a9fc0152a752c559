"""How a backtest trades: capital, costs, execution, direction, sizing and stops.

:class:`BacktestConfig` is the one model every backtest entry point (engine, sweep, CLI,
API, pipelines) takes; :func:`config_from` builds it from user-supplied values and turns
a validation failure into one line that names the field, the value and what was expected.
The execution model these fields drive is written down in docs/backtesting.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from breadthflow.core.errors import InvalidInputError

__all__ = ["BacktestConfig", "config_from"]


class BacktestConfig(BaseModel):
    """Parameters of one backtest. Unknown names are errors; every value is range-checked.

    >>> BacktestConfig(fees=0.0, execution="close").slippage
    0.0005
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cash: float = Field(10_000.0, gt=0, allow_inf_nan=False, description="starting capital")
    fees: float = Field(
        0.001, ge=0, lt=1, allow_inf_nan=False, description="proportional, on traded value"
    )
    slippage: float = Field(
        0.0005, ge=0, lt=1, allow_inf_nan=False, description="proportional, on traded value"
    )
    execution: Literal["open", "close"] = Field(
        "open",
        description="open: decided at the close of bar t, filled at the open of t+1; "
        "close: filled at the close of bar t",
    )
    direction: Literal["long", "longshort"] = "long"
    sizing: Literal["all_in", "fixed_fraction", "equal_weight"] = "all_in"
    fraction: float = Field(
        1.0, gt=0, le=1, allow_inf_nan=False, description="fixed_fraction: share of equity"
    )
    max_positions: int | None = Field(
        None, ge=1, description="portfolio mode: most positions open at once"
    )
    stop_loss: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="fraction beyond the entry fill"
    )
    take_profit: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="fraction beyond the entry fill"
    )
    trailing_stop: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="fraction from the best close"
    )
    integer_shares: bool = False
    margin: bool = Field(False, description="if false, cash never goes negative")
    portfolio: bool = Field(
        False, description="false: one account per symbol; true: one account for all"
    )

    @model_validator(mode="after")
    def _portfolio_only(self) -> BacktestConfig:
        # A per-symbol account holds one position at most: a weight across positions or a
        # position count means nothing there, and silently ignoring it would mislead.
        if not self.portfolio:
            if self.sizing == "equal_weight":
                raise ValueError(
                    "sizing=equal_weight needs portfolio=true "
                    "(per-symbol accounts hold one position; use all_in or fixed_fraction)"
                )
            if self.max_positions is not None:
                raise ValueError(
                    f"max_positions={self.max_positions} needs portfolio=true "
                    "(a per-symbol account holds one position at most)"
                )
        return self

    @property
    def cost_rate(self) -> float:
        """Fees plus slippage: the share of traded value paid on every fill."""
        return self.fees + self.slippage


def config_from(values: Mapping[str, Any] | None = None, **overrides: Any) -> BacktestConfig:
    """A validated :class:`BacktestConfig`; a bad value raises :class:`InvalidInputError`
    with one line naming the field, the value and what was expected.

    >>> config_from({"fees": "0.002"}).fees
    0.002
    >>> try:
    ...     config_from({"fees": 2})
    ... except InvalidInputError as err:
    ...     print(err)
    invalid backtest setting fees=2 — input should be less than 1
    """
    merged = {**dict(values or {}), **overrides}
    try:
        return BacktestConfig.model_validate(merged)
    except ValidationError as exc:
        raise InvalidInputError(_config_error(exc)) from None


def _config_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        known = ", ".join(BacktestConfig.model_fields)
        return f"unknown backtest setting '{where}' — known: {known}"
    if first["type"] == "value_error":  # the model validator: its message names the fields
        return "invalid backtest settings: " + first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    return f"invalid backtest setting {where}={value!r} — {first['msg'].lower()}"
