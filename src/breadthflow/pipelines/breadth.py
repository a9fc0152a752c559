"""The ``breadth`` pipeline: fetch → breadth → signals → backtest for one universe.

Each run:

1. **fetch** (per symbol, checkpointed): only bars newer than what the lake holds —
   from the day after the symbol's last stored bar (or ``start``) to ``end`` (today by
   default). A symbol that fails is recorded and, under the ``retry`` policy, retried.
2. **breadth**: the breadth table of the universe over the look-back window (the last
   ``lookback_days`` calendar days up to the newest stored bar); the latest row is kept
   in the step's detail and the table in the lake (``results/breadth/<pipeline>.parquet``).
3. **signals**: every strategy in ``strategies``, incremental like the fetch: only
   signals dated after the newest one the pipeline's earlier runs stored for that
   strategy (the whole window the first time), stored with this run's id. A signal is
   thus stored once per pipeline, and a resumed run replaces its own batch — never a
   duplicate ``(symbol, date, strategy)``.
4. **backtest**: ``backtest_strategy`` over the window; its key statistics go on the run.

Parameters (``definition.parameters``) and their defaults are in :data:`DEFAULTS`; the
``demo`` mode uses the bundled sample (2009-08-21 → 2010-08-20) and ``demo_large``.
The ``alerts`` parameter holds the pipeline's alert thresholds
(:mod:`breadthflow.pipelines.alerts`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, parse_date
from breadthflow.data.providers import get_provider
from breadthflow.pipelines.alerts import ALERTS_PARAMETER
from breadthflow.pipelines.definitions import Mode
from breadthflow.pipelines.lifecycle import PipelineLifecycle
from breadthflow.services import backtest as backtest_svc
from breadthflow.services import breadth as breadth_svc
from breadthflow.services import data as data_svc
from breadthflow.services import signals as signals_svc
from breadthflow.services.context import AppContext

DEFAULTS: dict[str, Any] = {
    "start": None,  # first date ever fetched (None: end - lookback_days)
    "end": None,  # last date fetched (None: today)
    "lookback_days": 365,  # analysis window, calendar days up to the newest bar
    "hl_window": 252,
    "strategies": ["breadth_composite", "zweig_thrust", "mcclellan_reversal"],
    "backtest_strategy": "breadth_composite",
}
DEMO: dict[str, Any] = {
    "universe": "demo_large",
    "provider": "sample",
    "start": "2009-08-21",
    "end": "2010-08-20",
    "hl_window": 50,
}
BACKTEST_KEYS = (
    "total_return_pct", "cagr_pct", "sharpe", "max_drawdown_pct", "n_trades", "win_rate_pct",
)  # fmt: skip


class BreadthPipeline(PipelineLifecycle):
    """fetch → breadth → signals → backtest, each a recorded, resumable step."""

    def __init__(self, ctx: AppContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ctx = ctx
        self.settings = self._settings()

    def _settings(self) -> dict[str, Any]:
        d = self.definition
        values = {**DEFAULTS, **(DEMO if d.mode is Mode.DEMO else {}), **d.parameters}
        allowed = set(DEFAULTS) | {"universe", "provider", ALERTS_PARAMETER}
        unknown = sorted(set(d.parameters) - allowed)
        if unknown:
            raise InvalidInputError(
                f"unknown breadth pipeline parameter(s) {', '.join(unknown)} — known: "
                f"{', '.join(DEFAULTS)}"
            )
        values["provider"] = d.provider if d.mode is not Mode.DEMO else DEMO["provider"]
        return values

    def universe(self) -> tuple[list[str], str | None]:
        """(symbols, universe name) the run works on."""
        d = self.definition
        if d.mode is Mode.DEMO:
            return data_svc.resolve_symbols(self.ctx, None, DEMO["universe"]), DEMO["universe"]
        if d.mode is Mode.ALL_SYMBOLS:
            provider = get_provider(self.settings["provider"], self.ctx.settings)
            known = provider.known_symbols()
            if known is None:
                raise InvalidInputError(
                    f"provider '{provider.name}' cannot list its symbols — use mode "
                    "custom_symbols with a universe"
                )
            return sorted(known), None
        if d.universe:
            return data_svc.resolve_symbols(self.ctx, None, d.universe), d.universe
        return list(d.symbols), None

    def execute(self) -> None:
        symbols, universe = self.universe()
        label = signals_svc.universe_label(universe, symbols)
        end = parse_date(self.settings["end"], "end") if self.settings["end"] else dt.date.today()
        lookback = int(self.settings["lookback_days"])
        start = (
            parse_date(self.settings["start"], "start")
            if self.settings["start"]
            else end - dt.timedelta(days=lookback)
        )
        provider = get_provider(self.settings["provider"], self.ctx.settings)
        stored = {
            row["symbol"]: row["last_date"]
            for row in self.ctx.lake.coverage(Timeframe.D1, symbols).to_dicts()
        }

        def fetch(symbol: str) -> dict[str, Any]:
            first = max(start, stored[symbol] + dt.timedelta(days=1)) if symbol in stored else start
            if first > end:
                return {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0}
            return data_svc.fetch_symbol(self.ctx, provider, symbol, first, end)

        fetched = self.for_each_symbol("fetch", symbols, fetch)
        self.log("info", f"fetch: {len(fetched.succeeded)} symbols, {len(fetched.errors)} failed")
        data_svc.refresh_snapshot(self.ctx)  # whole-universe reads after this one stay fast

        coverage = self.ctx.lake.coverage(Timeframe.D1, symbols)
        if coverage.height < 2:
            raise InvalidInputError(
                f"the breadth pipeline needs bars for at least 2 symbols of {label}; the lake "
                f"has {coverage.height}"
            )
        newest = coverage["last_date"].max()
        window_start = max(start, newest - dt.timedelta(days=lookback))
        chosen = dict(symbols=symbols if universe is None else None, universe=universe)
        hl_window = int(self.settings["hl_window"])

        def breadth() -> dict[str, Any]:
            table = breadth_svc.compute_breadth(
                self.ctx, window_start, newest, hl_window=hl_window, **chosen
            )
            self.ctx.lake.write_table(f"results/breadth/{self.definition.name}.parquet", table)
            latest = table.row(-1, named=True)
            shown = ("date", "advances", "declines", "mcclellan_osc", "pct_above_sma50", "zbt")
            return {"dates": table.height, "latest": {k: latest[k] for k in shown}}

        self.run_step("breadth", breadth)

        def signals() -> dict[str, Any]:
            pipeline_id = self.repo.get(self.run_id).pipeline_id
            stored_until = self.repo.signal_coverage(pipeline_id, exclude=self.run_id)
            made = {}
            for strategy in self.settings["strategies"]:
                first = window_start
                if (last := stored_until.get(strategy.strip())) is not None:
                    first = max(window_start, last + dt.timedelta(days=1))
                if first > newest:
                    made[strategy] = {"stored": 0, "from": None}
                    continue
                batch = signals_svc.generate_signals(
                    self.ctx, strategy, first, newest, hl_window=hl_window,
                    pipeline_run_id=self.run_id, **chosen,
                )  # fmt: skip
                made[strategy] = batch.counts | {"stored": batch.stored, "from": first}
            return {"strategies": made}

        detail = self.run_step("signals", signals)
        self.counts.signals_generated = sum(
            s.get("stored", 0) for s in detail.get("strategies", {}).values()
        )

        def backtest() -> dict[str, Any]:
            study = backtest_svc.prepare_study(
                self.ctx, self.settings["backtest_strategy"], window_start, newest,
                hl_window=hl_window, **chosen,
            )  # fmt: skip
            outcome = backtest_svc.run_backtest_study(self.ctx, study, pipeline_run_id=self.run_id)
            return {"backtest_id": outcome.id} | {k: outcome.stats.get(k) for k in BACKTEST_KEYS}

        self.backtest_results = self.run_step("backtest", backtest)
