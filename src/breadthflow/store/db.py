"""The metadata database: one engine per URL, sessions, and schema migrations.

SQLite (embedded default) and PostgreSQL (scaled out) run the same schema, created and
evolved only by the Alembic migrations in ``store/migrations``. :func:`open_database`
is the entry point: it validates the URL, connects, migrates to the latest schema when
the DB is behind, and caches the result for the rest of the process::

    db = open_database("sqlite:///~/.breadthflow/breadthflow.db")
    with db.session() as session:
        session.add(...)          # committed when the block ends, rolled back on error

Every failure a user can cause or fix (bad URL, server down, unwritable folder) is a
:class:`~breadthflow.core.errors.BreadthFlowError` with one line of text and the password
masked.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from breadthflow.core.config import mask_url
from breadthflow.core.errors import BackendUnavailableError, ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

URL_HINT = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"

# Accepted driver names → the driver we actually use. Plain ``postgresql://`` would pick
# psycopg2, which is not installed; psycopg 3 is.
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10

# Key of the PostgreSQL advisory lock held while migrating ("bfmigrat" in ASCII), so two
# processes starting against a fresh database do not both create the tables.
_MIGRATION_LOCK_KEY = 0x62666D6967726174
_migration_lock = threading.Lock()


def normalize_url(url: str) -> sa.URL:
    """Parse a database URL and pin the driver; raise :class:`ConfigError` when unusable.

    >>> normalize_url("postgres://app@db/bf").render_as_string()
    'postgresql+psycopg://app@db/bf'
    """
    shown = mask_url(str(url).strip())
    try:
        parsed = sa.make_url(str(url).strip())
    except (exc.ArgumentError, ValueError):
        raise ConfigError(f"invalid database URL '{shown}' — {URL_HINT}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(f"invalid database URL '{shown}' — {URL_HINT}")
    parsed = parsed.set(drivername=driver)
    if driver == "sqlite" and parsed.database and not _is_memory(parsed):
        # Absolute paths make the per-process cache key independent of the working folder.
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().absolute()))
    return parsed


def _is_memory(url: sa.URL) -> bool:
    return url.database in (None, "", ":memory:")


def _first_line(error: BaseException, password: str | None = None) -> str:
    """The driver's message, first line only, without the password (just in case)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    text = lines[0].strip() if lines else type(original).__name__
    if password:
        text = text.replace(password, "***")
    return text


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Runs once per new DBAPI connection, outside any transaction (PRAGMAs that change
    # foreign_keys or journal_mode are ignored inside one). busy_timeout goes first so
    # the WAL switch itself waits for a lock held by another process.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL: readers never block the writer, which matters when the dashboard reads
        # while a fetch or a pipeline writes.
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


@cache
def _script_directory() -> ScriptDirectory:
    # The migration scripts are part of the installed package and never change while
    # the process runs, so they are read once.
    return ScriptDirectory.from_config(_alembic_config(None, None))


def _alembic_config(url: str | None, connection: sa.Connection | None) -> Config:
    """An in-memory Alembic config (no alembic.ini) pointing at the packaged scripts."""
    config = Config()
    # Config values go through configparser interpolation, hence the %% escaping.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class Database:
    """An engine on one metadata DB plus sessions and migrations.

    Build it with :func:`open_database`, which also migrates and caches it; the
    constructor only validates the URL and prepares the engine (no connection yet).
    """

    def __init__(self, url: str) -> None:
        parsed = normalize_url(url)
        #: The normalised URL (driver pinned, SQLite path absolute). May hold a password:
        #: show :attr:`safe_url` instead.
        self.url: str = parsed.render_as_string(hide_password=False)
        self._password = parsed.password if isinstance(parsed.password, str) else None
        self.dialect: str = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine: Engine = self._sqlite_engine(parsed)
        else:
            self.engine = self._postgres_engine(parsed)
        # expire_on_commit=False: repositories read attributes after the block commits.
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.safe_url!r})"

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return mask_url(self.url)

    # --- engines --------------------------------------------------------------------------

    def _sqlite_engine(self, url: sa.URL) -> Engine:
        kwargs: dict[str, Any] = {}
        if _is_memory(url):
            # One shared connection, else every pooled connection sees its own empty DB.
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            self._prepare_sqlite_file(Path(str(url.database)))
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine

    def _prepare_sqlite_file(self, path: Path) -> None:
        """Create the DB's folder; refuse early (one line) when it cannot be written."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise BackendUnavailableError(
                f"cannot connect to database {self.safe_url}: "
                f"cannot create folder {path.parent} ({reason})"
            ) from error
        # WAL also writes PATH-wal and PATH-shm next to the file, so the folder must be
        # writable even when the file already exists.
        for target in (path.parent, path):
            if target.exists() and not os.access(target, os.W_OK):
                raise BackendUnavailableError(
                    f"cannot connect to database {self.safe_url}: {target} is not writable"
                )

    @staticmethod
    def _postgres_engine(url: sa.URL) -> Engine:
        connect_args: dict[str, Any] = {"application_name": "breadthflow"}
        if "connect_timeout" not in url.query:
            # Without it an unreachable host hangs for the OS TCP timeout (minutes).
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
        # pre_ping: a long-running server survives a database restart.
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    # --- errors ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _backend_errors(self, what: str) -> Iterator[None]:
        """Turn "cannot reach / cannot write the DB" driver errors into one line."""
        try:
            yield
        except (exc.OperationalError, exc.InterfaceError) as error:
            raise BackendUnavailableError(
                f"{what} {self.safe_url}: {_first_line(error, self._password)}"
            ) from error

    # --- public API -------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        >>> with db.session() as s:                     # doctest: +SKIP
        ...     s.add(Universe(name="mine"))
        """
        with self._backend_errors("database error on"), self._sessions.begin() as session:
            yield session

    def check(self) -> None:
        """Run ``select 1``; raise :class:`BackendUnavailableError` when the DB is unreachable."""
        with self._backend_errors("cannot connect to database"), self.engine.connect() as conn:
            conn.execute(sa.text("select 1"))

    def current_revision(self) -> str | None:
        """The schema revision stored in the DB (None for an empty database)."""
        with self._backend_errors("cannot connect to database"), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def alembic_config(self, connection: sa.Connection | None = None) -> Config:
        """An Alembic config for this DB, for ``alembic.command`` calls (history, downgrade).

        With ``connection``, env.py runs on it inside the caller's transaction.
        """
        return _alembic_config(self.url, connection)

    def head_revision(self) -> str | None:
        """The newest schema revision this version of breadthflow ships."""
        return _script_directory().get_current_head()

    def upgrade(self) -> None:
        """Migrate the schema to the latest revision (``alembic upgrade head``).

        All migrations run in one transaction, under a lock that makes a second process
        wait and then find nothing left to do: an advisory lock on PostgreSQL,
        ``BEGIN IMMEDIATE`` (the write lock) on SQLite. SQLite DDL is transactional once
        the transaction is explicit, so a failed migration leaves the schema as it was.
        """
        current = self.current_revision()
        if current is not None:
            try:
                _script_directory().get_revision(current)
            except CommandError:
                raise ConfigError(
                    f"database {self.safe_url} has schema revision '{current}', unknown to "
                    f"this version of breadthflow (newest known: '{self.head_revision()}') "
                    "— upgrade breadthflow or point BREADTHFLOW_DATABASE_URL elsewhere"
                ) from None
        # Alembic keeps its running context in module globals, so two threads must never
        # migrate at once; the database lock below covers other processes.
        with (
            _migration_lock,
            self._backend_errors("cannot migrate database"),
            self.engine.connect() as conn,
        ):
            if self.dialect == "sqlite":
                self._upgrade_sqlite(conn)
            else:
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
                command.upgrade(self.alembic_config(conn), "head")
                conn.commit()

    def _upgrade_sqlite(self, conn: sa.Connection) -> None:
        # Batch migrations rebuild tables (copy, drop, rename). With foreign keys on, the
        # DROP would cascade into referencing tables, so they are switched off for the
        # migration and checked before commit — the procedure the SQLite docs prescribe
        # (https://www.sqlite.org/lang_altertable.html#otheralter). The PRAGMA only takes
        # effect outside a transaction, hence before BEGIN.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            # pysqlite's legacy mode would autocommit each DDL statement; an explicit
            # BEGIN makes the whole upgrade one transaction, IMMEDIATE takes the write
            # lock up front (waiting busy_timeout for another migrating process).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            command.upgrade(self.alembic_config(conn), "head")
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
            conn.commit()
        finally:
            conn.rollback()  # no-op after commit; ends the transaction after an error
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()

    def migrate_if_behind(self) -> bool:
        """Upgrade only when the DB is behind the newest revision; True if it migrated."""
        if self.current_revision() == self.head_revision():
            return False
        self.upgrade()
        return True

    def dispose(self) -> None:
        """Close every pooled connection (the object can still reconnect afterwards)."""
        self.engine.dispose()


# --- the per-process cache ----------------------------------------------------------------

_databases: dict[str, Database] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Open (once per process) the metadata DB at ``url``, migrated to the newest schema.

    ``postgresql://`` and ``postgres://`` URLs use psycopg 3. A SQLite file's folder is
    created when missing. Raises :class:`ConfigError` for an unusable URL and
    :class:`BackendUnavailableError` when the DB cannot be reached or written.

    >>> db = open_database("sqlite:////tmp/bf-example/meta.db")  # doctest: +SKIP
    >>> db.current_revision() == db.head_revision()              # doctest: +SKIP
    True
    """
    key = normalize_url(url).render_as_string(hide_password=False)
    # One lock for the whole cache: opening happens a handful of times per process, and
    # it keeps two threads from migrating the same DB at once.
    with _lock:
        database = _databases.get(key)
        if database is None:
            database = Database(key)
            try:
                database.check()
            except BaseException:
                database.dispose()
                raise
            _databases[key] = database
        if upgrade and key not in _migrated:
            database.migrate_if_behind()
            _migrated.add(key)
    return database


def close_all() -> None:
    """Dispose every cached database and forget them (tests call this between cases)."""
    with _lock:
        for database in _databases.values():
            database.dispose()
        _databases.clear()
        _migrated.clear()
