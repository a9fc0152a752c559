"""Logging: human lines on the terminal, JSON lines with ECS field names in files.

Every record carries ``run_id`` (ECS custom field ``labels.run_id``) while code runs
inside :func:`run_context`, so a run's lines can be found in the log files.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import ecs_logging
from rich.console import Console
from rich.logging import RichHandler

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
_configured: dict[str, object] = {}

LOGGER_NAME = "breadthflow"


def current_run_id() -> str | None:
    return _run_id.get()


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Tag every log line written inside the block with ``run_id``."""
    token = _run_id.set(str(run_id))
    try:
        yield
    finally:
        _run_id.reset(token)


class _RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        run_id = _run_id.get()
        record.run_id = run_id
        if run_id is not None:
            # ecs-logging maps extra dotted keys into nested ECS fields.
            setattr(record, "labels.run_id", run_id)
        return True


def configure_logging(
    level: str = "INFO",
    logs_dir: Path | None = None,
    console: Console | None = None,
) -> None:
    """Set up the ``breadthflow`` logger once per process (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    key = f"{level}|{logs_dir}"
    if _configured.get("key") == key:
        return
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    terminal = RichHandler(
        console=console or Console(stderr=True),
        show_path=False,
        rich_tracebacks=False,
        markup=False,
    )
    terminal.setLevel(level)
    terminal.addFilter(_RunIdFilter())
    logger.addHandler(terminal)

    if logs_dir is not None:
        try:
            logs_dir.mkdir(parents=True, exist_ok=True)
            files = logging.handlers.RotatingFileHandler(
                logs_dir / "breadthflow.jsonl", maxBytes=20_000_000, backupCount=5, encoding="utf-8"
            )
        except OSError as exc:
            logger.warning("cannot write JSON logs to %s: %s", logs_dir, exc)
        else:
            files.setLevel(logging.DEBUG)
            files.setFormatter(
                ecs_logging.StdlibFormatter(exclude_fields=["process", "log.origin"])
            )
            files.addFilter(_RunIdFilter())
            logger.addHandler(files)
    _configured["key"] = key


def get_logger(name: str) -> logging.Logger:
    """A child of the ``breadthflow`` logger (``get_logger(__name__)``)."""
    if name.startswith(LOGGER_NAME):
        return logging.getLogger(name)
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
