"""Signals: registered strategies that turn breadth and technicals into BUY/SELL/HOLD.

Importing this package registers the built-in strategies (:mod:`.market`, :mod:`.stock`).
"""

from breadthflow.signals import market, model, stock  # noqa: F401  (registers the strategies)
from breadthflow.signals.base import (
    SIGNAL_COLUMNS,
    STRATEGIES,
    Level,
    MarketData,
    Strategy,
    StrategyParams,
    build_strategy,
    register,
    strategy_class,
)
from breadthflow.signals.config import CONFIG_VERSION, StrategyConfig, load_strategy_config

__all__ = [
    "CONFIG_VERSION",
    "SIGNAL_COLUMNS",
    "STRATEGIES",
    "Level",
    "MarketData",
    "Strategy",
    "StrategyConfig",
    "StrategyParams",
    "build_strategy",
    "load_strategy_config",
    "register",
    "strategy_class",
]
