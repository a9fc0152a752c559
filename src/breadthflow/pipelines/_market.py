"""What the research, training and paper kinds share with the breadth kind: their
parameters checked against defaults, the universe they work on, and the incremental,
per-symbol ``fetch`` step (only bars newer than the lake's are fetched)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, parse_date
from breadthflow.data.providers import get_provider
from breadthflow.pipelines.alerts import ALERTS_PARAMETER
from breadthflow.pipelines.checkpoints import step_key
from breadthflow.pipelines.definitions import Mode
from breadthflow.pipelines.lifecycle import PipelineLifecycle
from breadthflow.services import data as data_svc
from breadthflow.services.context import AppContext
from breadthflow.services.signals import universe_label

#: The bundled sample (S&P 500 daily bars, 2009-08-21 → 2010-08-20).
SAMPLE_START, SAMPLE_END = "2009-08-21", "2010-08-20"


class MarketPipeline(PipelineLifecycle):
    """Base of the kinds that read the market: subclasses set ``KIND``, ``DEFAULTS`` and
    ``DEMO`` (what the ``demo`` mode changes), and call :meth:`fetch_step` first."""

    KIND = "market"
    DEFAULTS: Mapping[str, Any] = {}
    DEMO: Mapping[str, Any] = {}

    def __init__(self, ctx: AppContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ctx = ctx
        self.settings: dict[str, Any] = {}

    def initialize(self) -> None:
        # Checked here, not in __init__: a bad parameter then fails the run, recorded.
        self.settings = self._settings()

    def _settings(self) -> dict[str, Any]:
        d = self.definition
        base = {"start": None, "end": None, "lookback_days": 365, **self.DEFAULTS}
        # ``alerts`` holds the pipeline's alert thresholds, read by the lifecycle.
        unknown = sorted(set(d.parameters) - set(base) - {"universe", "provider", ALERTS_PARAMETER})
        if unknown:
            raise InvalidInputError(
                f"unknown {self.KIND} pipeline parameter(s) {', '.join(unknown)} — known: "
                f"{', '.join(base)}"
            )
        demo = d.mode is Mode.DEMO
        values = {**base, **(self.DEMO if demo else {}), **d.parameters}
        values["provider"] = "sample" if demo else d.provider
        return values

    def integer(self, name: str, minimum: int = 1, optional: bool = False) -> int | None:
        """Parameter ``name`` as a whole number >= ``minimum`` (None allowed when optional)."""
        value = self.settings[name]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidInputError(
                f"invalid {self.KIND} parameter {name}={value!r} — expected a whole number "
                f">= {minimum}"
            )
        return value

    def number(self, name: str, minimum: float = 0.0) -> float:
        """Parameter ``name`` as a number >= ``minimum``."""
        value = self.settings[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise InvalidInputError(
                f"invalid {self.KIND} parameter {name}={value!r} — expected a number >= {minimum}"
            )
        return float(value)

    def universe(self) -> tuple[list[str], str | None]:
        """(symbols, universe name) the run works on."""
        d = self.definition
        if d.mode is Mode.DEMO:
            name = str(self.settings.get("universe") or "demo_small")
            return data_svc.resolve_symbols(self.ctx, None, name), name
        if d.mode is Mode.ALL_SYMBOLS:
            known = get_provider(self.settings["provider"], self.ctx.settings).known_symbols()
            if known is None:
                raise InvalidInputError(
                    f"provider '{self.settings['provider']}' cannot list its symbols — use "
                    "mode custom_symbols with a universe"
                )
            return sorted(known), None
        if d.universe:
            return data_svc.resolve_symbols(self.ctx, None, d.universe), d.universe
        return list(d.symbols), None

    def label(self, symbols: list[str], universe: str | None) -> str:
        return universe_label(universe, symbols)

    def date_range(self) -> tuple[dt.date, dt.date]:
        """(first date fetched, last date): ``start``/``end``, else the look-back to today."""
        s = self.settings
        end = parse_date(s["end"], "end") if s["end"] else dt.date.today()
        start = (
            parse_date(s["start"], "start")
            if s["start"]
            else end - dt.timedelta(days=int(self.integer("lookback_days") or 0))
        )
        if start > end:
            raise InvalidInputError(f"start {start} is after end {end} — swap them")
        return start, end

    def pinned_range(self, step: str) -> tuple[dt.date, dt.date]:
        """:meth:`date_range`, or the range ``step`` recorded in an earlier attempt of this
        run: a run resumed tomorrow must not mix results of two ranges ("today" moved)."""
        done = self.checkpoints.get(step_key(step))
        if done and "range_start" in done and "range_end" in done:
            return (
                dt.date.fromisoformat(done["range_start"]),
                dt.date.fromisoformat(done["range_end"]),
            )
        return self.date_range()

    def fetch_step(self, symbols: list[str], start: dt.date, end: dt.date) -> list[str]:
        """Fetch what the lake lacks for each symbol (checkpointed per symbol); returns the
        symbols that have bars afterwards."""
        provider = get_provider(self.settings["provider"], self.ctx.settings)
        stored = {
            row["symbol"]: row["last_date"]
            for row in self.ctx.lake.coverage(Timeframe.D1, symbols).to_dicts()
        }

        def fetch(symbol: str) -> dict[str, Any]:
            last = stored.get(symbol)
            begin = start if last is None else max(start, last + dt.timedelta(days=1))
            if begin > end:
                return {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}
            return data_svc.fetch_symbol(self.ctx, provider, symbol, begin, end)

        fetched = self.for_each_symbol("fetch", symbols, fetch)
        self.log("info", f"fetch: {len(fetched.succeeded)} symbols, {len(fetched.errors)} failed")
        data_svc.refresh_snapshot(self.ctx)  # whole-universe reads after this one stay fast
        present = set(self.ctx.lake.coverage(Timeframe.D1, symbols)["symbol"].to_list())
        return [s for s in symbols if s in present]
