"""Rendering for read commands: ``--format table|json|csv`` to stdout.

Tables are for people; JSON and CSV are stable for scripts (stdout only carries data,
progress bars and logs go to stderr).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, indent=2, ensure_ascii=False)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return _cell(value)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dt.datetime):  # tables show seconds; JSON/CSV keep everything
        zone = " UTC" if value.utcoffset() == dt.timedelta(0) else ""
        return value.strftime("%Y-%m-%d %H:%M:%S") + zone
    return _default(value) if isinstance(value, dt.date) else str(value)


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    fmt: Format,
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print a list of records as a table, a JSON array or CSV."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt is Format.json:
        out.print(
            to_json([{c: r.get(c) for c in cols} for r in rows]), markup=False, highlight=False
        )
    elif fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow([_csv_cell(r.get(c)) for c in cols])
    else:
        table = Table(title=title, title_justify="left", header_style="bold")
        for c in cols:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(_cell(r.get(c)) for c in cols))
        out.print(table)


def emit_record(record: Mapping[str, Any], fmt: Format, *, title: str | None = None) -> None:
    """Print one record: key/value table, a JSON object, or two-column CSV."""
    if fmt is Format.json:
        out.print(to_json(record), markup=False, highlight=False)
    elif fmt is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["key", "value"])
        for k, v in record.items():
            writer.writerow([k, _cell(v)])
    else:
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for k, v in record.items():
            table.add_row(k, _cell(v))
        out.print(table)
