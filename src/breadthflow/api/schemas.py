"""Request and response models of the API that are not service models already."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from breadthflow.pipelines.definitions import (
    ErrorPolicy,
    Kind,
    Mode,
    Notifications,
    RetryPolicy,
    TriggerMode,
)

T = TypeVar("T")

#: The largest id or offset a 64-bit integer column (SQLite and PostgreSQL) can hold.
MAX_ID = 2**63 - 1
#: A row id in a path: larger values are 422, not a driver overflow.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


class Page(BaseModel, Generic[T]):
    """One page of a list; ``total`` counts every match, ``next_offset`` is None on the
    last page."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total else None,
    }


class PipelineChanges(BaseModel):
    """Fields of a pipeline to change (``PATCH``); the others keep their values."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = None
    mode: Mode | None = None
    symbols: list[str] | str | None = None
    universe: str | None = None
    provider: str | None = None
    schedule: str | None = None
    timezone: str | None = None
    trigger_mode: TriggerMode | None = None
    scanner_tickers: list[str] | str | None = None
    parameters: dict[str, Any] | None = None
    retry_policy: RetryPolicy | None = None
    error_policy: ErrorPolicy | None = None
    notifications: Notifications | None = None
    is_active: bool | None = None


class PipelineCreate(PipelineChanges):
    """A new pipeline: a name and any definition fields (the rest take their defaults).
    The whole definition is then checked by ``PipelineDefinition``."""

    name: str = Field(min_length=1, max_length=64, examples=["daily-breadth"])


class CommandRequest(BaseModel):
    """``{"command": "...", "parameters": {...}}`` for ``/execute``."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=64, examples=["data_summary"])
    parameters: dict[str, Any] = Field(default_factory=dict)


class UniverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    symbols: list[str] | str
    description: str = Field("", max_length=1000)
    replace: bool = False
