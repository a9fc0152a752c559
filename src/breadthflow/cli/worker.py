"""``breadthflow worker``: a Celery worker executing pipeline runs (docs/scale-out.md)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from breadthflow.cli._common import context
from breadthflow.core.errors import ConfigError, InvalidInputError

POOLS = ("prefork", "threads", "solo")
_QUEUE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Runs executed at once (processes).")
    ] = 2,
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-Q", help="Comma-separated queues (default: the URL's queue)."),
    ] = None,
    pool: Annotated[
        str, typer.Option("--pool", help="prefork (processes), threads or solo.")
    ] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel", help="Worker log level.")] = "INFO",
) -> None:
    """Execute pipeline runs sent by `pipeline start` through Celery
    (BREADTHFLOW_EXECUTOR_URL=celery+redis://host:6379/0)."""
    from breadthflow.execution import open_executor
    from breadthflow.execution.celery_executor import CeleryExecutor

    if concurrency < 1:
        raise InvalidInputError(f"invalid concurrency {concurrency} — expected 1 or more")
    if pool not in POOLS:
        raise InvalidInputError(f"unknown pool '{pool}' — expected one of {', '.join(POOLS)}")
    level = loglevel.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise InvalidInputError(
            f"invalid log level '{loglevel}' — expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    chosen = [q.strip() for q in queues.split(",")] if queues else None
    for queue in chosen or []:
        if not _QUEUE.match(queue):
            raise InvalidInputError(
                f"invalid queue '{queue}' — expected letters, digits and _.:- (e.g. breadthflow)"
            )
    ctx = context()
    executor = open_executor(ctx.settings.executor_url)
    if not isinstance(executor, CeleryExecutor):
        raise ConfigError(
            f"`breadthflow worker` needs a Celery executor, but the executor is "
            f"'{ctx.settings.executor_url}' — set BREADTHFLOW_EXECUTOR_URL=celery+redis://"
            "host:6379/0 (with the local executor, `breadthflow pipeline start` runs the runs)"
        )
    executor.run_worker(concurrency=concurrency, queues=chosen, pool=pool, loglevel=level)
