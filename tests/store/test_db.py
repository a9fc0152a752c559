"""Opening the metadata DB: URLs, migrations, sessions and one-line errors."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from breadthflow.core.errors import BackendUnavailableError, ConfigError
from breadthflow.store import Database, close_all, normalize_url, open_database
from breadthflow.store import db as db_module
from breadthflow.store.db import MIGRATIONS_DIR
from breadthflow.store.models import Base, Ingestion, Universe

TABLES = {
    "universes", "universe_symbols", "ingestions", "ingestion_issues", "ingestion_failures",
    "signals", "backtests", "scans", "pipelines", "pipeline_runs", "run_steps", "run_logs",
    "run_checkpoints", "alerts",
    "ml_models", "paper_accounts", "paper_orders", "paper_fills", "paper_positions", "paper_equity",
    "api_tokens", "command_audit",
    "bus_events", "bus_groups", "bus_pending",
}  # fmt: skip
LATEST = "0009"


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


# --- migrations ----------------------------------------------------------------------------


def test_first_open_applies_migrations(db_url: str) -> None:
    db = open_database(db_url)

    assert db.head_revision() == LATEST
    assert db.current_revision() == db.head_revision()
    assert _tables(db) >= TABLES


def test_open_without_upgrade_leaves_an_empty_database_alone(db_url: str) -> None:
    db = open_database(db_url, upgrade=False)

    assert db.current_revision() is None
    assert not TABLES & _tables(db)


def test_opening_twice_returns_the_cached_database(db_url: str) -> None:
    assert open_database(db_url) is open_database(db_url)


def test_reopening_a_migrated_database_does_not_migrate_again(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_database(db_url)
    close_all()
    calls: list[str] = []
    monkeypatch.setattr(Database, "upgrade", lambda self: calls.append(self.url))

    db = open_database(db_url)

    assert calls == []
    assert db.current_revision() == db.head_revision()


def test_orm_models_match_the_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_migrations_downgrade_to_empty_and_upgrade_again(db: Database) -> None:
    with db.engine.begin() as conn:
        command.downgrade(db.alembic_config(conn), "base")
    assert db.current_revision() is None
    assert not TABLES & _tables(db)

    db.upgrade()

    assert db.current_revision() == db.head_revision()
    assert _tables(db) >= TABLES


def test_unknown_schema_revision_is_a_config_error(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    close_all()

    with pytest.raises(ConfigError, match="schema revision '9999', unknown"):
        open_database(db_url)


@pytest.mark.slow
def test_concurrent_first_opens_from_several_processes_all_succeed(db_url: str) -> None:
    # A fresh DB opened by three processes at once: one migrates, the others wait for
    # the migration lock and then find the schema current.
    script = textwrap.dedent(
        """
        import sys
        from breadthflow.store import open_database
        db = open_database(sys.argv[1])
        assert db.current_revision() == db.head_revision()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs]

    assert [code for code, _ in results] == [0, 0, 0], results
    assert open_database(db_url).current_revision() == LATEST


@pytest.fixture
def broken_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The shipped migrations plus a later revision that creates a table, then fails."""
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts)
    (scripts / "versions" / "broken.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from alembic import op

            revision = "broken"
            down_revision = "{LATEST}"

            def upgrade():
                op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
                raise RuntimeError("migration bug")
            """
        )
    )
    monkeypatch.setattr(db_module, "MIGRATIONS_DIR", scripts)
    db_module._script_directory.cache_clear()
    yield
    db_module._script_directory.cache_clear()


def test_a_failing_migration_leaves_the_schema_as_it_was(
    db_url: str, broken_migrations: None
) -> None:
    with pytest.raises(RuntimeError, match="migration bug"):
        open_database(db_url)

    db = open_database(db_url, upgrade=False)
    assert db.current_revision() is None
    assert _tables(db) & (TABLES | {"half_done"}) == set()


def test_alembic_commands_also_work_without_a_live_connection(db_url: str) -> None:
    db = open_database(db_url, upgrade=False)

    command.upgrade(db.alembic_config(), "head")  # env.py opens its own engine

    assert db.current_revision() == db.head_revision()


def test_offline_mode_renders_the_schema_as_sql(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(db_url)

    command.upgrade(db.alembic_config(), "head", sql=True)

    sql = capsys.readouterr().out
    assert "CREATE TABLE universes" in sql
    assert "CREATE INDEX ix_ingestions_started_at" in sql
    assert db.current_revision() is None  # nothing was executed


def test_migration_scripts_live_inside_the_package() -> None:
    # Under src/breadthflow, so the wheel ships them (.mako included) and an installed
    # breadthflow migrates without an alembic.ini.
    package = resources.files("breadthflow.store")
    assert Path(str(package / "migrations")) == MIGRATIONS_DIR
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


# --- sessions ------------------------------------------------------------------------------


def test_session_commits_when_the_block_succeeds(db: Database) -> None:
    with db.session() as session:
        session.add(Universe(name="kept", description=""))

    with db.session() as session:
        assert session.scalar(sa.select(Universe.name)) == "kept"


def test_session_rolls_back_when_the_block_raises(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Universe(name="lost", description=""))
        session.flush()
        raise RuntimeError("boom")

    with db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Universe)) == 0


def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2024, 3, 1, 14, 30, 15, 123456, tzinfo=paris)
    with db.session() as session:
        session.add(Universe(name="tz", description="", created_at=moment, updated_at=moment))

    with db.session() as session:
        stored = session.scalar(sa.select(Universe.created_at))

    assert stored == moment
    assert stored.utcoffset() == dt.timedelta(0)
    assert stored.hour == 12


def test_naive_timestamps_are_refused(db: Database) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), db.session() as session:
        session.add(
            Ingestion(
                provider="sample",
                timeframe="1d",
                start_date=dt.date(2010, 1, 4),
                end_date=dt.date(2010, 1, 8),
                symbols_requested=1,
                started_at=dt.datetime(2024, 1, 1, 12, 0),  # naive on purpose
            )
        )


def test_check_runs_against_the_live_database(db: Database) -> None:
    db.check()


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://app@db:5432/bf", "postgresql+psycopg"),
        ("postgresql://app@db/bf", "postgresql+psycopg"),
        ("postgresql+psycopg://app@db/bf", "postgresql+psycopg"),
        ("sqlite:///meta.db", "sqlite"),
        ("sqlite+pysqlite:///meta.db", "sqlite"),
    ],
)
def test_url_aliases_map_to_the_drivers_we_ship(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_relative_sqlite_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_url("sqlite:///rel/meta.db").database == str(tmp_path / "rel" / "meta.db")


def test_an_alias_url_opens_the_same_database(db_url: str) -> None:
    alias = db_url.replace("postgresql+psycopg://", "postgres://").replace(
        "sqlite:///", "sqlite+pysqlite:///"
    )
    assert alias != db_url
    assert open_database(alias) is open_database(db_url)


def test_sqlite_creates_the_missing_folder_and_sets_its_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "meta.db"
    db = open_database(f"sqlite:///{path}")

    assert path.is_file()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


def test_in_memory_sqlite_works_for_throwaway_use() -> None:
    db = open_database("sqlite://")
    assert db.current_revision() == db.head_revision()


# --- one-line errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["mysql+nothing://x", "not a url", "", "postgresql+psycopg2://u@h/db"]
)
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_database(url)

    message = str(caught.value)
    assert message == (
        f"invalid database URL '{url}' — expected sqlite:///PATH or "
        "postgresql+psycopg://USER@HOST:PORT/DB"
    )


def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        open_database("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/nope")

    message = str(caught.value)
    assert message.startswith(
        "cannot connect to database postgresql+psycopg://postgres:***@127.0.0.1:1/nope: "
    )
    assert "s3cret" not in message
    assert "\n" not in message


def test_sqlite_in_an_unwritable_place_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        open_database("sqlite:////proc/forbidden/x.db")

    message = str(caught.value)
    assert message.startswith("cannot connect to database sqlite:////proc/forbidden/x.db: ")
    assert "\n" not in message


def test_a_failed_open_is_not_cached() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nope"
    for _ in range(2):
        with pytest.raises(BackendUnavailableError):
            open_database(url)
