"""Market-level strategies against plain-Python references written from their definitions.

Each reference reads the breadth table row by row (lists and loops, no Polars windows),
so it is independent of the expressions it checks.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import polars as pl
import pytest

from breadthflow.signals import MarketData
from breadthflow.signals.market import (
    Z_CLIP,
    BreadthComposite,
    BreadthCompositeParams,
    McClellanParams,
    McClellanReversal,
    ZweigParams,
    ZweigThrust,
)

from .conftest import UNIVERSE

TOLERANCE = 1e-9


def column(breadth: pl.DataFrame, name: str) -> list[Any]:
    return breadth.sort("date")[name].to_list()


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


# --- breadth_composite ------------------------------------------------------------------


def reference_zscores(values: list[float | None], window: int, min_periods: int) -> list:
    out: list[float | None] = []
    for i, x in enumerate(values):
        past = [v for v in values[max(0, i - window + 1) : i + 1] if v is not None]
        if x is None or len(past) < min_periods:
            out.append(None)
            continue
        mean, std = statistics.fmean(past), statistics.stdev(past)
        z = 0.0 if std == 0 else (x - mean) / std
        out.append(max(-Z_CLIP, min(Z_CLIP, z)) / Z_CLIP)
    return out


def reference_measures(breadth: pl.DataFrame, p: BreadthCompositeParams) -> dict[str, list]:
    ad = column(breadth, "ad_line")
    momentum = [
        None
        if i < p.momentum or ad[i] is None or ad[i - p.momentum] is None
        else ad[i] - ad[i - p.momentum]
        for i in range(len(ad))
    ]
    return {
        "mcclellan": column(breadth, "mcclellan_osc_ratio"),
        "pct_above_sma": column(breadth, f"pct_above_sma{p.sma}"),
        "hl_index": column(breadth, "hl_index"),
        "ad_momentum": momentum,
        "zbt": column(breadth, "zbt"),
    }


def reference_scores(breadth: pl.DataFrame, p: BreadthCompositeParams) -> list[float | None]:
    weights = p.weights.model_dump()
    total = sum(weights.values())
    z = {
        name: reference_zscores(values, p.window, p.min_periods)
        for name, values in reference_measures(breadth, p).items()
    }
    scores: list[float | None] = []
    for i in range(breadth.height):
        scored = {name: w for name, w in weights.items() if z[name][i] is not None}
        share = sum(scored.values()) / total
        if not scored or share < p.min_weight:
            scores.append(None)
        else:
            weighted = sum(w * z[name][i] for name, w in scored.items())
            scores.append(weighted / sum(scored.values()))
    return scores


def reference_decision(score: float, p: BreadthCompositeParams) -> tuple[str, float]:
    """Signal type and confidence as BreadthComposite.evaluate documents them."""
    if score >= p.buy_threshold:
        kind, conf = "BUY", 0.5 + 0.5 * (score - p.buy_threshold) / (1 - p.buy_threshold)
    elif score <= -p.sell_threshold:
        kind, conf = "SELL", 0.5 + 0.5 * (-score - p.sell_threshold) / (1 - p.sell_threshold)
    else:  # HOLD: surest at a score of 0, down to 0 at the thresholds
        kind = "HOLD"
        conf = 1 - score / p.buy_threshold if score >= 0 else 1 + score / p.sell_threshold
    return kind, min(1.0, max(0.0, conf))


COMPOSITE_PARAMS = {
    "defaults": {},
    "short-windows": {
        "window": 30,
        "min_periods": 10,
        "momentum": 5,
        "sma": 20,
        "buy_threshold": 0.2,
        "sell_threshold": 0.3,
        "min_weight": 0.7,
        "weights": {"mcclellan": 0.0, "hl_index": 0.5, "zbt": 0.3},
    },
}


@pytest.fixture(params=list(COMPOSITE_PARAMS), ids=list(COMPOSITE_PARAMS))
def composite(request: pytest.FixtureRequest) -> BreadthComposite:
    return BreadthComposite(BreadthCompositeParams.model_validate(COMPOSITE_PARAMS[request.param]))


def test_composite_score_matches_reference(composite: BreadthComposite, breadth) -> None:
    expected = reference_scores(breadth, composite.params)
    got = composite.scores(breadth)["score"].to_list()

    assert sum(s is not None for s in expected) > 100
    mismatches = [
        (i, g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if not close(g, e)
    ]
    assert not mismatches, mismatches[:5]


def test_composite_signals_follow_score_thresholds(
    composite: BreadthComposite, market_data: MarketData
) -> None:
    p = composite.params
    scores = dict(
        zip(
            column(market_data.breadth, "date"),
            reference_scores(market_data.breadth, p),
            strict=True,
        )
    )
    signals = composite.generate(market_data)

    # One row (HOLD included) for every date with a score, and none for the others.
    assert signals["date"].to_list() == [d for d, s in scores.items() if s is not None]
    assert set(signals["symbol"]) == {UNIVERSE}
    for row in signals.iter_rows(named=True):
        kind, confidence = reference_decision(scores[row["date"]], p)
        assert row["signal_type"] == kind, row
        assert close(row["confidence"], confidence), row
        assert close(row["strength"], scores[row["date"]]), row
        assert close(row["factors"]["score"], row["strength"]), row


def test_composite_reaches_buy_and_sell_on_the_sample(market_data: MarketData) -> None:
    signals = BreadthComposite().generate(market_data)

    assert set(signals["signal_type"]) == {"BUY", "SELL", "HOLD"}
    assert signals["confidence"].is_between(0.0, 1.0).all()
    assert signals["confidence"].null_count() == 0


def test_composite_score_is_null_without_enough_weight(breadth: pl.DataFrame) -> None:
    """hl_index has no value before a full high/low window: with it weighing all but a
    sliver, no date before then may be scored."""
    p = BreadthCompositeParams.model_validate(
        {
            "weights": {
                "mcclellan": 0.1,
                "pct_above_sma": 0,
                "hl_index": 0.9,
                "ad_momentum": 0,
                "zbt": 0,
            }
        }
    )
    scores = BreadthComposite(p).scores(breadth)
    first_hl = scores.filter(pl.col("hl_index_z").is_not_null())["date"].min()

    early = scores.filter(pl.col("date") < first_hl)
    assert early.height > 0 and early["mcclellan_z"].is_not_null().any()
    assert early["score"].null_count() == early.height


# --- zweig_thrust -----------------------------------------------------------------------


def reference_zweig(breadth: pl.DataFrame, p: ZweigParams) -> list:
    dates, zbt = column(breadth, "date"), column(breadth, "zbt")
    thrust = []
    for i, z in enumerate(zbt):
        prior = [v for v in zbt[max(0, i - p.within) : i] if v is not None]
        thrust.append(z is not None and z > p.high and bool(prior) and min(prior) < p.low)
    return [d for i, d in enumerate(dates) if thrust[i] and not (i > 0 and thrust[i - 1])]


def buy_dates(signals: pl.DataFrame) -> list:
    assert set(signals["signal_type"]) <= {"BUY"}
    return signals["date"].to_list()


def test_zweig_buys_on_the_first_day_of_each_breadth_thrust(
    market_data: MarketData, breadth: pl.DataFrame
) -> None:
    flags = [bool(f) for f in column(breadth, "zbt_thrust")]  # null (no zbt) is no thrust
    dates = column(breadth, "date")
    starts = [d for i, d in enumerate(dates) if flags[i] and not (i > 0 and flags[i - 1])]

    assert starts
    assert buy_dates(ZweigThrust().generate(market_data)) == starts


@pytest.mark.parametrize(
    "params",
    [{"low": 0.45}, {"low": 0.45, "high": 0.58, "within": 5}, {"high": 0.6, "within": 20}],
    ids=str,
)
def test_zweig_with_custom_params_matches_reference(
    params: dict, market_data: MarketData, breadth: pl.DataFrame
) -> None:
    p = ZweigParams.model_validate(params)
    expected = reference_zweig(breadth, p)

    assert expected
    assert buy_dates(ZweigThrust(p).generate(market_data)) == expected


def test_zweig_confidence_is_above_half_on_a_thrust(market_data: MarketData) -> None:
    signals = ZweigThrust().generate(market_data)

    assert signals.height > 0
    assert (signals["confidence"] > 0.5).all()
    assert (signals["strength"] > ZweigParams().high).all()


# --- mcclellan_reversal -----------------------------------------------------------------


def reference_mcclellan(breadth: pl.DataFrame, p: McClellanParams) -> list[tuple]:
    dates = column(breadth, "date")
    osc = column(breadth, "mcclellan_osc_ratio" if p.ratio_adjusted else "mcclellan_osc")
    events = []
    for t in range(2, len(osc)):
        now, prev, before = osc[t], osc[t - 1], osc[t - 2]
        if now is None or prev is None or before is None:
            continue
        if prev < -p.level and now > prev and prev <= before:
            events.append((dates[t], "BUY"))
        elif prev > p.level and now < prev and prev >= before:
            events.append((dates[t], "SELL"))
    return events


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"level": 40.0},
        {"ratio_adjusted": True},
        {"ratio_adjusted": True, "level": 100.0},
    ],
    ids=str,
)
def test_mcclellan_turns_match_reference(
    params: dict, market_data: MarketData, breadth: pl.DataFrame
) -> None:
    p = McClellanParams.model_validate(params)
    expected = reference_mcclellan(breadth, p)

    signals = McClellanReversal(p).generate(market_data)

    assert expected
    assert list(zip(signals["date"], signals["signal_type"], strict=True)) == expected


def test_mcclellan_ratio_adjusted_reads_the_ratio_oscillator(market_data: MarketData) -> None:
    """On 500 stocks the two oscillators differ in scale, so their turns differ."""
    plain = McClellanReversal(McClellanParams(level=40.0)).generate(market_data)
    ratio = McClellanReversal(McClellanParams(level=40.0, ratio_adjusted=True)).generate(
        market_data
    )
    by_date = market_data.breadth.select("date", "mcclellan_osc", "mcclellan_osc_ratio")

    joined = ratio.join(by_date, on="date")
    assert plain["date"].to_list() != ratio["date"].to_list()
    assert [f["oscillator"] for f in joined["factors"]] == joined["mcclellan_osc_ratio"].to_list()


def test_mcclellan_strength_is_the_turning_value(market_data: MarketData) -> None:
    signals = McClellanReversal(McClellanParams(level=40.0)).generate(market_data)

    assert signals.height > 0
    for row in signals.iter_rows(named=True):
        assert row["strength"] == row["factors"]["previous"]
        assert (row["strength"] < -40) == (row["signal_type"] == "BUY")
        assert math.isclose(row["confidence"], min(1.0, abs(row["strength"]) / 80))
