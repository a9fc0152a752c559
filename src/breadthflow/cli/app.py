"""The ``breadthflow`` command. Sub-commands live one module per group."""

from __future__ import annotations

import sys

import typer

from breadthflow import __version__
from breadthflow.cli import alerts as alerts_cmd
from breadthflow.cli import backtest, breadth, config_cmd, data, db, demo, pipeline, scan, signals
from breadthflow.cli import dispatcher as dispatcher_cmd
from breadthflow.cli import events as events_cmd
from breadthflow.cli import models as models_cmd
from breadthflow.cli import paper as paper_cmd
from breadthflow.cli import serve as serve_cmd
from breadthflow.cli import status as status_cmd
from breadthflow.cli import token as token_cmd
from breadthflow.cli import worker as worker_cmd
from breadthflow.cli._output import err
from breadthflow.core.errors import BreadthFlowError

app = typer.Typer(
    name="breadthflow",
    help="Market-breadth signals: data, breadth, signals, backtests, scans and pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(breadth.app, name="breadth")
app.add_typer(signals.app, name="signals")
app.add_typer(backtest.app, name="backtest")
app.add_typer(scan.app, name="scan")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(alerts_cmd.app, name="alerts")
app.add_typer(models_cmd.app, name="models")
app.add_typer(paper_cmd.app, name="paper")
app.add_typer(dispatcher_cmd.app, name="dispatcher")
app.add_typer(events_cmd.app, name="events")
app.add_typer(config_cmd.app, name="config")
app.add_typer(db.app, name="db")
app.command("demo")(demo.demo)
app.command("worker")(worker_cmd.worker)
app.add_typer(token_cmd.app, name="token")
app.command("serve")(serve_cmd.serve)
app.command("status")(status_cmd.status)


@app.command("version")
def version() -> None:
    """Print the BreadthFlow version."""
    typer.echo(__version__)


def main() -> None:
    """Console entry point: user errors are one line and an exit code, never a traceback."""
    try:
        app()
    except BreadthFlowError as exc:
        err.print(f"error: {exc}", style="red", markup=False, highlight=False)
        sys.exit(exc.exit_code)
