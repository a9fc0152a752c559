"""The metadata store: SQL tables (SQLAlchemy 2 + Alembic) on SQLite or PostgreSQL.

Open the database with :func:`open_database` (migrated on first use) and use the
repositories, which return plain pydantic models rather than ORM objects::

    from breadthflow.store import UniverseRepository, open_database

    universes = UniverseRepository(open_database("sqlite:///meta.db"))
"""

from breadthflow.store.db import Database, close_all, normalize_url, open_database
from breadthflow.store.ingestions import IngestionRepository, IngestionSummary, ingestion_status
from breadthflow.store.universes import (
    UniverseRepository,
    UniverseSummary,
    validate_universe_name,
)

__all__ = [
    "Database",
    "IngestionRepository",
    "IngestionSummary",
    "UniverseRepository",
    "UniverseSummary",
    "close_all",
    "ingestion_status",
    "normalize_url",
    "open_database",
    "validate_universe_name",
]
