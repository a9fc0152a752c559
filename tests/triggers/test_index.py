"""Matching signals to pipelines: the index against a plain double loop."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from breadthflow.triggers.index import PipelineIndex, TriggerSignal

TICKERS = ["AAPL", "MSFT", "GOOG", "AMZN", "IBM", "XOM"]


def reference_match(
    pipelines: dict[int, list[str]], signals: list[TriggerSignal]
) -> dict[int, TriggerSignal]:
    """For every pipeline, the highest-confidence signal of one of its tickers (first on a tie)."""
    out: dict[int, TriggerSignal] = {}
    for pid, tickers in pipelines.items():
        best = None
        for signal in signals:
            if signal.ticker in tickers and (best is None or signal.confidence > best.confidence):
                best = signal
        if best is not None:
            out[pid] = best
    return out


def test_a_signal_matches_every_pipeline_watching_its_ticker() -> None:
    index = PipelineIndex.from_tickers({1: ["AAPL"], 2: ["AAPL", "MSFT"], 3: ["GOOG"]})

    matched = index.match([TriggerSignal("AAPL", "BULLISH", 85.0)])

    assert sorted(matched) == [1, 2]
    assert matched[1].payload()["confidence"] == 85.0


def test_a_pipeline_gets_its_strongest_signal_of_the_batch() -> None:
    index = PipelineIndex.from_tickers({7: ["AAPL", "MSFT"]})
    weak = TriggerSignal("AAPL", "BULLISH", 40.0)
    strong = TriggerSignal("MSFT", "BEARISH", 90.0)

    matched = index.match([weak, strong, TriggerSignal("IBM", "BULLISH", 99.0)])

    assert matched == {7: strong}


def test_unknown_tickers_match_nothing() -> None:
    index = PipelineIndex.from_tickers({1: ["AAPL"]})

    assert index.match([TriggerSignal("ZZZZ", "BULLISH", 50.0)]) == {}


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(1, 50), st.lists(st.sampled_from(TICKERS), min_size=1, max_size=4), max_size=30
    ),
    st.lists(
        st.tuples(
            st.sampled_from([*TICKERS, "NONE"]),
            st.sampled_from(["BULLISH", "BEARISH"]),
            st.integers(0, 100),
        ),
        max_size=40,
    ),
)
def test_matching_equals_the_plain_double_loop(
    pipelines: dict[int, list[str]], raw: list[tuple[str, str, int]]
) -> None:
    signals = [TriggerSignal(t, s, float(c), event_id=str(i)) for i, (t, s, c) in enumerate(raw)]
    index = PipelineIndex.from_tickers(pipelines)

    got = index.match(signals)
    want = reference_match(pipelines, signals)

    assert got.keys() == want.keys()
    for pid in got:
        # Ties may pick a different but equally strong signal of the pipeline's tickers.
        assert got[pid].confidence == want[pid].confidence
        assert got[pid].ticker in pipelines[pid]


def test_large_index_matches_like_the_reference() -> None:
    rng = random.Random(3)
    universe = [f"S{i:04d}" for i in range(500)]
    pipelines = {pid: rng.sample(universe, 3) for pid in range(1, 2001)}
    signals = [
        TriggerSignal(rng.choice(universe), "BULLISH", float(rng.randint(0, 100)))
        for _ in range(300)
    ]

    got = PipelineIndex.from_tickers(pipelines).match(signals)
    want = reference_match(pipelines, signals)

    assert {p: s.confidence for p, s in got.items()} == {p: s.confidence for p, s in want.items()}
