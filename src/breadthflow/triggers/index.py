"""Which signal-triggered pipelines care about which tickers, and matching a batch.

The index is a plain ``ticker → pipeline ids`` dict built from the stored definitions
(``scanner_tickers``, else the pipeline's symbols, else its universe). Matching a batch
first keeps the strongest signal per ticker, then walks each distinct ticker's
pipelines once, so the cost is the number of (ticker, pipeline) pairs touched, not
signals × pipelines. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from breadthflow.store.pipelines import StoredPipeline

#: Signal words, as normalised by the bus (BUY → BULLISH, …).
BIASES = ("BULLISH", "BEARISH", "NEUTRAL")


@dataclass(frozen=True)
class TriggerSignal:
    """One ticker's signal, as it triggers a run (it becomes the run's payload)."""

    ticker: str
    signal: str
    confidence: float
    event_id: str = ""
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """What a triggered run carries in ``trigger_payload`` (the pipeline reads it)."""
        return {
            "ticker": self.ticker,
            "signal": self.signal,
            "bias": self.signal,
            "confidence": self.confidence,
            "event_id": self.event_id,
            "source": self.source,
            **{k: v for k, v in self.extra.items() if k not in {"ticker", "signal", "confidence"}},
        }


def signals_from_data(
    data: Mapping[str, Any], event_id: str = "", source: str = ""
) -> list[TriggerSignal]:
    """The tickers of a (bus-validated) ``trading-signals`` event's data."""
    out = []
    for item in data.get("tickers", ()):
        extra = {k: v for k, v in item.items() if k not in {"ticker", "signal", "confidence"}}
        out.append(
            TriggerSignal(
                ticker=item["ticker"],
                signal=item["signal"],
                confidence=float(item["confidence"]),
                event_id=event_id,
                source=source,
                extra=extra,
            )
        )
    return out


def pipeline_tickers(
    pipeline: StoredPipeline, universe_symbols: Callable[[str], list[str]] | None = None
) -> list[str]:
    """The tickers that trigger ``pipeline``: scanner tickers, else symbols, else universe."""
    if pipeline.scanner_tickers:
        return list(pipeline.scanner_tickers)
    if pipeline.symbols:
        return list(pipeline.symbols)
    if pipeline.universe and universe_symbols is not None:
        return universe_symbols(pipeline.universe)
    return []


class PipelineIndex:
    """``ticker → ids`` of active ``trigger_mode=signal`` pipelines.

    >>> index = PipelineIndex.from_tickers({1: ["AAPL"], 2: ["AAPL", "MSFT"]})
    >>> sorted(index.match([TriggerSignal("AAPL", "BULLISH", 80.0)]))
    [1, 2]
    """

    def __init__(self, by_ticker: Mapping[str, Sequence[int]], names: Mapping[int, str]) -> None:
        self.by_ticker: dict[str, tuple[int, ...]] = {t: tuple(ids) for t, ids in by_ticker.items()}
        self.names = dict(names)

    @classmethod
    def from_tickers(
        cls, tickers: Mapping[int, Iterable[str]], names: Mapping[int, str] | None = None
    ) -> PipelineIndex:
        by_ticker: dict[str, list[int]] = {}
        for pipeline_id, symbols in tickers.items():
            for ticker in dict.fromkeys(symbols):
                by_ticker.setdefault(ticker, []).append(pipeline_id)
        return cls(by_ticker, names or {pid: str(pid) for pid in tickers})

    @classmethod
    def from_pipelines(
        cls,
        pipelines: Iterable[StoredPipeline],
        universe_symbols: Callable[[str], list[str]] | None = None,
    ) -> PipelineIndex:
        chosen = [p for p in pipelines if p.is_active and p.trigger_mode == "signal"]
        return cls.from_tickers(
            {p.id: pipeline_tickers(p, universe_symbols) for p in chosen},
            {p.id: p.name for p in chosen},
        )

    @property
    def pipelines(self) -> int:
        return len(self.names)

    def match(self, signals: Iterable[TriggerSignal]) -> dict[int, TriggerSignal]:
        """``pipeline id → the signal that triggers it`` for one batch.

        A pipeline matched by several signals of the batch gets the one with the highest
        confidence (the first such on a tie), so one batch starts it at most once.
        """
        strongest: dict[str, TriggerSignal] = {}
        for signal in signals:
            if signal.ticker not in self.by_ticker:
                continue
            best = strongest.get(signal.ticker)
            if best is None or signal.confidence > best.confidence:
                strongest[signal.ticker] = signal
        chosen: dict[int, TriggerSignal] = {}
        for signal in sorted(strongest.values(), key=lambda s: -s.confidence):
            for pipeline_id in self.by_ticker[signal.ticker]:
                if pipeline_id not in chosen:
                    chosen[pipeline_id] = signal
        return chosen
