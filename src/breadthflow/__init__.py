"""BreadthFlow: market-breadth signal platform."""

__version__ = "0.1.0"
