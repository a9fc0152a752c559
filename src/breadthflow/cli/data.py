"""``breadthflow data …``: fetch bars into the lake, inspect, export, manage universes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from breadthflow.cli._common import (
    EndOpt,
    FormatOpt,
    StartOpt,
    SymbolsOpt,
    TimeframeOpt,
    UniverseOpt,
    context,
)
from breadthflow.cli._output import Format, emit_record, emit_rows, err, out
from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import FetchReport
from breadthflow.services import data as svc

app = typer.Typer(help="Fetch, inspect and export market data.", no_args_is_help=True)
universe_app = typer.Typer(help="Manage your own symbol lists.", no_args_is_help=True)
app.add_typer(universe_app, name="universe")


def _options(path: Path | None, options: list[str] | None) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"invalid --option '{item}' — expected KEY=VALUE")
        parsed[key.strip()] = value.strip()
    if path is not None:
        parsed["path"] = str(path)
    return parsed


def print_fetch_report(report: FetchReport, fmt: Format) -> None:
    summary = report.summary()
    if fmt is not Format.table:
        summary["failures"] = [f.model_dump() for f in report.failures]
        emit_record(summary, fmt)
        return
    fixed = {k: v for k, v in report.issue_counts().items()}
    emit_record(
        {
            "provider": report.provider,
            "timeframe": report.timeframe.value,
            "symbols stored": f"{report.symbols_stored:,} of {report.symbols_requested:,}",
            "rows received": report.rows_received,
            "rows inserted / updated / unchanged": (
                f"{report.rows_inserted:,} / {report.rows_updated:,} / {report.rows_unchanged:,}"
            ),
            "date range": f"{report.first_date} → {report.last_date}" if report.first_date else "—",
            "problems found": fixed or "none",
            "time": f"{report.seconds:.2f} s",
        },
        fmt,
        title=f"Fetch #{report.ingestion_id}",
    )
    if report.failures:
        emit_rows(
            [f.model_dump() for f in report.failures[:20]],
            fmt,
            title=f"Failed symbols ({len(report.failures)})",
        )


def run_fetch(request: svc.FetchRequest, quiet: bool = False) -> FetchReport:
    """Run a fetch with a progress bar on stderr (shared by `data fetch` and `demo`)."""
    ctx = context()
    with Progress(
        TextColumn("[bold]fetch[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task(request.provider, total=None)

        def progress(done: int, total: int, symbol: str) -> None:
            bar.update(task, completed=done, total=total, description=symbol)

        return svc.fetch_bars(ctx, request, progress)


@app.command("fetch")
def fetch(
    provider: Annotated[
        str, typer.Option("--provider", "-p", help="sample, synthetic, csv or yahoo.")
    ],
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    timeframe: TimeframeOpt = "1d",
    path: Annotated[Path | None, typer.Option(help="Folder of CSV files (provider csv).")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Provider option KEY=VALUE (repeatable)."),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Fetch bars from a provider into the lake (upsert: re-fetching never duplicates)."""
    request = svc.FetchRequest(
        provider=provider,
        start=start,
        end=end,
        symbols=symbols,
        universe=universe,
        timeframe=timeframe,
        options=_options(path, option),
    )
    report = run_fetch(request, quiet=fmt is not Format.table)
    print_fetch_report(report, fmt)
    if report.failures:
        raise typer.Exit(1)


@app.command("summary")
def summary(fmt: FormatOpt = Format.table) -> None:
    """What the lake holds per timeframe, and the latest fetches."""
    result = svc.data_summary(context())
    if fmt is Format.json:
        emit_record(result, fmt)
        return
    if fmt is Format.csv:
        emit_rows(
            result["timeframes"],
            fmt,
            columns=["timeframe", "symbols", "rows", "first_date", "last_date"],
        )
        return
    out.print(f"lake: {result['lake']}", markup=False, highlight=False)
    if not result["timeframes"]:
        out.print(
            "no bars stored yet — try: breadthflow data fetch --provider sample "
            "--universe demo_small --start 2009-08-21 --end 2010-08-20",
            markup=False,
        )
    else:
        rows = [{**row, "snapshot": _snapshot_cell(row.get("snapshot"))}
                for row in result["timeframes"]]  # fmt: skip
        emit_rows(rows, fmt, title="Stored bars")
    if result["recent_fetches"]:
        emit_rows([_fetch_row(f) for f in result["recent_fetches"]], fmt, title="Recent fetches")


def _snapshot_cell(snapshot: dict | None) -> str:
    if not snapshot:
        return "—"
    return f"{snapshot['fresh']:,} of {snapshot['fresh'] + snapshot['stale']:,} symbols fresh"


def _fetch_row(fetch: dict) -> dict:
    """A fetch record squeezed into one readable table row."""
    started = (fetch.get("started_at") or "")[:16].replace("T", " ")
    return {
        "id": fetch["id"],
        "provider": f"{fetch['provider']} {fetch['timeframe']}",
        "status": fetch["status"],
        "symbols": f"{fetch['symbols_stored']}/{fetch['symbols_requested']}",
        "rows new/upd/same": (
            f"{fetch['rows_inserted']:,}/{fetch['rows_updated']:,}/{fetch['rows_unchanged']:,}"
        ),
        "issues": sum((fetch.get("issues") or {}).values()),
        "started (UTC)": started,
    }


@app.command("snapshot")
def snapshot_cmd(
    timeframe: TimeframeOpt = "1d",
    status: Annotated[
        bool, typer.Option("--status", help="Only say how the snapshot stands; change nothing.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Bring the lake's read snapshot up to date (fetches do it themselves); --status shows it.

    The snapshot is one file holding every daily partition, which makes whole-universe
    reads (scans, breadth) several times faster; reads never depend on it being fresh.
    """
    ctx = context()
    if status:
        emit_record(svc.snapshot_status(ctx, timeframe), fmt)
        return
    report = svc.refresh_snapshot(ctx, timeframe, strict=True)
    if report is None:
        emit_record(svc.snapshot_status(ctx, timeframe), fmt)
        return
    emit_record(report, fmt)


@app.command("coverage")
def coverage_cmd(timeframe: TimeframeOpt = "1d", fmt: FormatOpt = Format.table) -> None:
    """Per symbol: rows, first and last date stored."""
    frame = svc.coverage(context(), timeframe)
    emit_rows(frame.to_dicts(), fmt, title=f"Coverage ({timeframe})",
              columns=["symbol", "rows", "first_date", "last_date"])  # fmt: skip


@app.command("issues")
def issues_cmd(
    ingestion: Annotated[int | None, typer.Argument(help="Fetch id (default: the latest).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. split_adjusted.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Problems found and fixed in fetched data (splits, repaired rows, missing sessions)."""
    rows = svc.fetch_issues(context(), ingestion, kind)
    emit_rows(rows, fmt, title="Data issues", columns=["symbol", "date", "kind", "rows", "detail"])


@app.command("universes")
def universes_cmd(fmt: FormatOpt = Format.table) -> None:
    """List built-in and user universes."""
    emit_rows(svc.list_universes(context()), fmt, title="Universes")


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.csv or FILE.parquet")],
    start: StartOpt,
    end: EndOpt,
    symbols: SymbolsOpt = None,
    universe: UniverseOpt = None,
    timeframe: TimeframeOpt = "1d",
) -> None:
    """Write stored bars (symbol,date,open,high,low,close,volume) to CSV or Parquet."""
    result = svc.export_bars(context(), output, start, end, symbols, universe, timeframe)
    err.print(
        f"wrote {result.rows:,} rows for {result.symbols:,} symbols to {result.path}",
        markup=False,
        highlight=False,
    )


@universe_app.command("show")
def universe_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """The symbols of a universe."""
    symbols = svc.resolve_symbols(context(), universe=name)
    emit_rows([{"symbol": s} for s in symbols], fmt, title=f"{name} ({len(symbols)})")


@universe_app.command("create")
def universe_create(
    name: str,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated symbols.")],
    description: Annotated[str, typer.Option(help="What the list is for.")] = "",
    replace: Annotated[bool, typer.Option(help="Overwrite an existing list.")] = False,
) -> None:
    """Store a named symbol list (duplicates are rejected)."""
    stored = svc.create_universe(context(), name, symbols, description, replace)
    err.print(f"universe '{name}' stored with {len(stored)} symbols", markup=False)


@universe_app.command("delete")
def universe_delete(name: str) -> None:
    """Delete one of your lists."""
    svc.delete_universe(context(), name)
    err.print(f"universe '{name}' deleted", markup=False)
