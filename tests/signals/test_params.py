"""Strategy parameters: the registry, validation messages, and the versioned TOML config."""

from __future__ import annotations

from pathlib import Path

import pytest

from breadthflow.core.errors import ConfigError, InvalidInputError, NotFoundError
from breadthflow.signals import STRATEGIES, build_strategy, load_strategy_config
from breadthflow.signals.market import BreadthCompositeParams

BUILT_IN = {
    "breadth_composite",
    "zweig_thrust",
    "mcclellan_reversal",
    "golden_cross",
    "rsi_reversion",
    "breadth_filtered",
}


def user_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strategies.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- registry and validation ------------------------------------------------------------


def test_registry_holds_the_six_built_in_strategies() -> None:
    assert set(STRATEGIES) >= BUILT_IN
    assert all(STRATEGIES[name].name == name for name in STRATEGIES)


def test_unknown_strategy_is_not_found_with_a_suggestion() -> None:
    with pytest.raises(NotFoundError, match="did you mean 'golden_cross'"):
        build_strategy("golden_crosss")


def test_unknown_strategy_without_a_close_name_lists_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match=r"known: .*rsi_reversion"):
        build_strategy("momentum")


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown parameter 'oversld'.*rsi_reversion"):
        build_strategy("rsi_reversion", {"oversld": 25})


def test_unknown_nested_parameter_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"weights\.breadth"):
        build_strategy("breadth_composite", {"weights": {"breadth": 1.0}})


def test_wrong_type_names_parameter_and_value() -> None:
    with pytest.raises(InvalidInputError, match=r"window='abc'.*breadth_composite") as err:
        build_strategy("breadth_composite", {"window": "abc"})
    assert "integer" in str(err.value)


def test_out_of_range_value_is_invalid() -> None:
    with pytest.raises(InvalidInputError, match="oversold=150"):
        build_strategy("rsi_reversion", {"oversold": 150})


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("golden_cross", {"fast": 200, "slow": 50}, "fast=200 must be shorter than slow=50"),
        ("golden_cross", {"fast": 50, "slow": 50}, "fast=50 must be shorter than slow=50"),
        ("zweig_thrust", {"low": 0.7, "high": 0.6}, "low=0.7 must be below high=0.6"),
        ("zweig_thrust", {"low": 0.5, "high": 0.5}, "low=0.5 must be below high=0.5"),
        ("rsi_reversion", {"oversold": 70}, "oversold=70.0 must be below overbought=70.0"),
        (
            "breadth_composite",
            {"weights": dict.fromkeys(BreadthCompositeParams().weights.model_dump(), 0)},
            "weights must not all be zero",
        ),
        ("breadth_composite", {"sma": 30}, "sma=30 — expected one of 20, 50, 200"),
        ("breadth_composite", {"window": 10, "min_periods": 20}, "min_periods=20 exceeds"),
        ("breadth_filtered", {"regime": {"sma": 30}}, "sma=30"),
    ],
)
def test_inconsistent_parameters_are_invalid(name: str, params: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_strategy(name, params)


def test_string_values_from_the_command_line_convert() -> None:
    assert build_strategy("rsi_reversion", {"oversold": "25"}).params.oversold == 25.0
    assert build_strategy("breadth_composite", {"window": "30"}).params.window == 30
    assert build_strategy("mcclellan_reversal", {"ratio_adjusted": "true"}).params.ratio_adjusted


def test_later_layers_win_and_nested_weights_merge_key_by_key() -> None:
    strategy = build_strategy(
        "breadth_composite",
        {"window": 40, "weights": {"zbt": 0.5}},
        {"window": 50, "weights": {"hl_index": 0.0}},
    )
    weights = strategy.params.weights

    assert strategy.params.window == 50
    assert (weights.zbt, weights.hl_index, weights.mcclellan) == (0.5, 0.0, 0.25)


def test_params_are_frozen() -> None:
    params = build_strategy("golden_cross").params
    with pytest.raises(ValueError, match="frozen"):
        params.fast = 10


# --- the packaged configuration ---------------------------------------------------------


def test_packaged_config_covers_every_strategy() -> None:
    config = load_strategy_config()

    assert set(config.sections) == set(STRATEGIES)
    assert config.version == 1


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_packaged_config_equals_the_params_defaults(name: str) -> None:
    """docs, code and config agree: the shipped file restates the defaults, nothing more."""
    config = load_strategy_config()
    defaults = STRATEGIES[name].Params()

    assert config.build(name).params == defaults
    for key, value in config.params(name).items():
        default = getattr(defaults, key)
        if isinstance(value, dict):
            assert value == default.model_dump(), key
        else:
            assert value == default, key
            assert type(value) is type(default), key  # 70.0 in the file for a float


# --- the user's file --------------------------------------------------------------------


def test_user_file_overrides_one_parameter(tmp_path: Path) -> None:
    path = user_file(tmp_path, "version = 1\n[rsi_reversion]\noversold = 25\n")

    config = load_strategy_config(path)
    params = config.build("rsi_reversion").params

    assert (params.oversold, params.overbought, params.period) == (25.0, 70.0, 14)
    assert config.sources[-1] == str(path)
    assert config.build("golden_cross").params == STRATEGIES["golden_cross"].Params()


def test_user_file_merges_nested_weights_key_by_key(tmp_path: Path) -> None:
    path = user_file(tmp_path, "version = 1\n[breadth_composite.weights]\nzbt = 0.5\n")

    params = load_strategy_config(path).build("breadth_composite").params

    assert params.weights.zbt == 0.5
    assert params.weights.mcclellan == 0.25 and params.weights.hl_index == 0.20
    assert params.window == 63


def test_overrides_apply_on_top_of_the_user_file(tmp_path: Path) -> None:
    path = user_file(tmp_path, "version = 1\n[rsi_reversion]\noversold = 25\nperiod = 10\n")

    params = load_strategy_config(path).build("rsi_reversion", {"oversold": "20"}).params

    assert (params.oversold, params.period) == (20.0, 10)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version = 2\n[rsi_reversion]\noversold = 25\n", "version 2"),
        ("[rsi_reversion]\noversold = 25\n", "version None"),
        ("version = 1\n[rsi_reversal]\noversold = 25\n", r"unknown section \[rsi_reversal\]"),
        ("version = 1\nrsi_reversion = 3\n", r"\[rsi_reversion\]"),
        ("version = 1\n[rsi_reversion]\noversold = 'abc'\n", "oversold='abc'"),
        ("version = 1\n[rsi_reversion]\noversold = 80\n", "oversold=80.0 must be below"),
        ("version = 1\n[rsi_reversion]\noversld = 25\n", "unknown parameter 'oversld'"),
        ("version = 1\n[rsi_reversion\noversold = 25\n", "not valid TOML"),
    ],
    ids=[
        "version-2",
        "no-version",
        "unknown-section",
        "section-not-a-table",
        "bad-type",
        "inconsistent",
        "unknown-param",
        "invalid-toml",
    ],
)
def test_bad_user_file_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = user_file(tmp_path, text)

    with pytest.raises(ConfigError, match=message) as err:
        load_strategy_config(path)
    assert str(path) in str(err.value)


def test_missing_user_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read strategy file"):
        load_strategy_config(tmp_path / "absent.toml")
