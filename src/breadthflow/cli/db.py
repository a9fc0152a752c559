"""``breadthflow db …``: schema migrations of the metadata DB."""

from __future__ import annotations

import typer

from breadthflow.cli._common import FormatOpt
from breadthflow.cli._output import Format, emit_record, err
from breadthflow.core.config import get_settings, mask_url
from breadthflow.store.db import open_database

app = typer.Typer(help="Metadata database: migrations and status.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration (also done automatically on first use)."""
    url = get_settings().resolved_database_url
    db = open_database(url, upgrade=False)
    before = db.current_revision()
    db.upgrade()
    after = db.current_revision()
    note = "already at" if before == after else f"upgraded {before or 'empty'} →"
    err.print(f"database {mask_url(url)}: {note} {after}", markup=False, highlight=False)


@app.command("current")
def current(fmt: FormatOpt = Format.table) -> None:
    """The schema revision of the DB and the newest one this version knows."""
    url = get_settings().resolved_database_url
    db = open_database(url, upgrade=False)
    emit_record(
        {"database": mask_url(url), "revision": db.current_revision(), "head": db.head_revision()},
        fmt,
    )
