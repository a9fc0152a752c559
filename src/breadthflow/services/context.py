"""The application context: settings plus the backends they name, opened lazily.

Interfaces (CLI, API, pipelines) build one :class:`AppContext` and pass it to service
functions, so "open the DB" and "open the lake" happen in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from breadthflow.core.config import Settings, get_settings
from breadthflow.core.logging import configure_logging
from breadthflow.data.lake import Lake, open_lake
from breadthflow.store.db import Database, open_database


@dataclass
class AppContext:
    settings: Settings = field(default_factory=get_settings)

    @cached_property
    def db(self) -> Database:
        """The metadata DB, migrated to the latest schema on first use."""
        return open_database(self.settings.resolved_database_url)

    @cached_property
    def lake(self) -> Lake:
        return open_lake(self.settings.resolved_lake_url, self.settings)

    def configure_logging(self) -> None:
        configure_logging(
            self.settings.log_level,
            self.settings.logs_dir if self.settings.log_json else None,
        )
