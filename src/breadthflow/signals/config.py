"""The versioned strategy configuration: packaged defaults, then the user's file.

``strategies.toml`` ships with the package (``version = 1``). A user file — the
``strategies_file`` setting, else ``$BREADTHFLOW_HOME/strategies.toml`` when present —
overrides any parameter, section by section. Both must carry the same ``version``, so a
file written for another parameter layout is refused instead of half-applied.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from breadthflow.core.errors import BreadthFlowError, ConfigError
from breadthflow.signals.base import STRATEGIES, Strategy, build_strategy, merge_params

CONFIG_VERSION = 1
PACKAGED_NAME = "strategies.toml"


@dataclass(frozen=True)
class StrategyConfig:
    """Parameters per strategy, merged from the packaged file and the user's."""

    version: int
    sources: tuple[str, ...]
    sections: dict[str, dict[str, Any]]

    def params(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

    def build(self, name: str, overrides: dict[str, Any] | None = None) -> Strategy:
        """The strategy with configured parameters, then ``overrides`` on top."""
        return build_strategy(name, self.params(name), overrides or {})


def load_strategy_config(user_file: Path | None = None) -> StrategyConfig:
    """Read and check the configuration; a bad file is one :class:`ConfigError` line."""
    packaged = resources.files("breadthflow.signals").joinpath(PACKAGED_NAME)
    sections = _sections(tomllib.loads(packaged.read_text("utf-8")), f"packaged {PACKAGED_NAME}")
    sources = [f"packaged {PACKAGED_NAME}"]
    if user_file is not None:
        try:
            text = user_file.read_text("utf-8")
            document = tomllib.loads(text)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read strategy file {user_file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"strategy file {user_file} is not valid TOML: {exc}") from None
        for name, params in _sections(document, str(user_file)).items():
            sections[name] = merge_params(sections.get(name, {}), params)
        sources.append(str(user_file))
    config = StrategyConfig(CONFIG_VERSION, tuple(sources), sections)
    for name in sections:  # every configured value must build, or the file is wrong
        try:
            config.build(name)
        except BreadthFlowError as exc:
            raise ConfigError(f"strategy configuration ({' + '.join(sources)}): {exc}") from None
    return config


def _sections(document: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    version = document.get("version")
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"strategy file {where} has version {version!r} — this BreadthFlow reads "
            f"version {CONFIG_VERSION}; add `version = {CONFIG_VERSION}` after checking its "
            "parameters against docs/signals.md"
        )
    sections: dict[str, dict[str, Any]] = {}
    for key, value in document.items():
        if key == "version":
            continue
        if key not in STRATEGIES:
            known = ", ".join(sorted(STRATEGIES))
            raise ConfigError(f"strategy file {where}: unknown section [{key}] — known: {known}")
        if not isinstance(value, dict):
            raise ConfigError(
                f"strategy file {where}: '{key}' must be a table ([{key}] with NAME = VALUE "
                f"lines), not {value!r}"
            )
        sections[key] = value
    return sections
