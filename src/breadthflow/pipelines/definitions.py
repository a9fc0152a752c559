"""Pipeline definitions: what a pipeline does, on which symbols, when — validated.

A definition crosses every boundary (CLI flags, API payloads, the DB), so it is a pydantic
model; a bad schedule, name or policy is a one-line :class:`InvalidInputError`.

Schedules are either an **interval** (``30s``, ``5m``, ``15m``, ``1h``, ``1d``) or a
five-field **cron** expression (``30 16 * * mon-fri``) evaluated in ``timezone``.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from enum import StrEnum
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import parse_symbols

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INTERVAL_PATTERN = re.compile(r"^(\d+)\s*(s|m|h|d)$")
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL_SECONDS = 1


class Kind(StrEnum):
    BREADTH = "breadth"
    RESEARCH = "research"
    TRAINING = "training"
    PAPER = "paper"


class Mode(StrEnum):
    DEMO = "demo"
    ALL_SYMBOLS = "all_symbols"
    CUSTOM_SYMBOLS = "custom_symbols"


class TriggerMode(StrEnum):
    PERIODIC = "periodic"
    SIGNAL = "signal"


class ErrorPolicy(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    STOP = "stop"


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter: wait ``base × factor^(attempt-1)`` seconds (at most
    ``max_delay``), ± ``jitter`` of it, between attempts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=20)
    base_delay: float = Field(1.0, ge=0)
    factor: float = Field(2.0, ge=1)
    max_delay: float = Field(300.0, ge=0)
    jitter: float = Field(0.1, ge=0, le=1)


class Notifications(BaseModel):
    """Where failures and recoveries are announced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None
    email_to: list[str] = Field(default_factory=list)
    on: list[str] = Field(default_factory=lambda: ["failure", "recovery"])


class Schedule(BaseModel):
    """An interval or a cron expression, with the time zone cron is read in."""

    model_config = ConfigDict(frozen=True)

    expression: str
    timezone: str = "UTC"

    @property
    def interval_seconds(self) -> int | None:
        match = INTERVAL_PATTERN.match(self.expression.strip())
        return int(match[1]) * INTERVAL_UNITS[match[2]] if match else None

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first due time strictly after ``moment`` (UTC in, UTC out). Intervals are
        aligned to the epoch (``5m`` fires at :00, :05, …) so every scheduler agrees."""
        moment = moment.astimezone(dt.UTC)
        seconds = self.interval_seconds
        if seconds is not None:
            epoch = int(moment.timestamp())
            return dt.datetime.fromtimestamp((epoch // seconds + 1) * seconds, dt.UTC)
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = croniter(self.expression, moment.astimezone(zone)).get_next(dt.datetime)
        return local.astimezone(dt.UTC)


def parse_schedule(expression: str, timezone: str = "UTC") -> Schedule:
    """A checked schedule; bad input is one line saying what was expected."""
    text = expression.strip()
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"unknown time zone '{timezone}' — expected an IANA name like UTC or America/New_York"
        ) from None
    match = INTERVAL_PATTERN.match(text)
    if match:
        if int(match[1]) * INTERVAL_UNITS[match[2]] < MIN_INTERVAL_SECONDS:
            raise InvalidInputError(f"invalid interval '{text}' — it must be at least 1s")
        return Schedule(expression=f"{int(match[1])}{match[2]}", timezone=timezone)
    if len(text.split()) == 5 and croniter.is_valid(text):
        return Schedule(expression=text, timezone=timezone)
    raise InvalidInputError(
        f"invalid schedule '{text}' — expected an interval (30s, 5m, 1h, 1d) or a five-field "
        "cron expression (minute hour day month weekday, e.g. '30 16 * * mon-fri')"
    )


class PipelineDefinition(BaseModel):
    """Everything a pipeline is; stored in ``pipelines``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Kind = Kind.BREADTH
    mode: Mode = Mode.DEMO
    symbols: list[str] = Field(default_factory=list)
    universe: str | None = None
    provider: str = "sample"
    schedule: str | None = "1d"
    timezone: str = "UTC"
    trigger_mode: TriggerMode = TriggerMode.PERIODIC
    scanner_tickers: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    error_policy: ErrorPolicy = ErrorPolicy.RETRY
    notifications: Notifications = Field(default_factory=Notifications)
    is_active: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "expected 1-64 lower-case letters, digits, '-' or '_', starting with a letter "
                "or digit"
            )
        return value

    @field_validator("symbols", "scanner_tickers", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_symbols(value) if value.strip() else []
        if not value:
            return []
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of symbols such as ['AAPL', 'MSFT'] or 'AAPL,MSFT'")
        return parse_symbols(list(value))

    @model_validator(mode="after")
    def _consistent(self) -> PipelineDefinition:
        if self.trigger_mode is TriggerMode.PERIODIC and not self.schedule:
            raise ValueError("a periodic pipeline needs a schedule (e.g. 5m or a cron line)")
        if self.schedule:
            parse_schedule(self.schedule, self.timezone)
        if self.mode is Mode.CUSTOM_SYMBOLS and not (self.symbols or self.universe):
            raise ValueError("mode custom_symbols needs symbols or a universe")
        if (
            self.trigger_mode is TriggerMode.SIGNAL
            and not self.scanner_tickers
            and not (self.symbols or self.universe)
        ):
            raise ValueError("a signal-triggered pipeline needs scanner_tickers or symbols")
        return self

    def parsed_schedule(self) -> Schedule | None:
        return parse_schedule(self.schedule, self.timezone) if self.schedule else None


def definition_from(values: dict[str, Any]) -> PipelineDefinition:
    """Validate user input into a definition; the first problem as one line."""
    try:
        return PipelineDefinition.model_validate(values)
    except InvalidInputError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        value = first.get("input")
        shown = f"{where}={value!r}: " if where and not isinstance(value, dict) else ""
        raise InvalidInputError(f"invalid pipeline {shown}{reason}") from None
