"""``breadthflow config …``"""

from __future__ import annotations

import typer

from breadthflow.cli._common import FormatOpt
from breadthflow.cli._output import Format, emit_record
from breadthflow.core.config import get_settings

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(fmt: FormatOpt = Format.table) -> None:
    """Effective settings (defaults < TOML file < BREADTHFLOW_* env), secrets masked."""
    emit_record(get_settings().public_view(), fmt, title="Configuration")
