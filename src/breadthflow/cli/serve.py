"""``breadthflow serve``: the API, the dashboard, the scheduler and local workers in one
process (each can be turned off, to run them as separate processes)."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer

from breadthflow.cli._common import context
from breadthflow.cli._output import err, out
from breadthflow.core.errors import BackendUnavailableError, InvalidInputError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _check_port(host: str, port: int) -> None:
    """Fail early, in one line, when the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidInputError(f"invalid --host '{host}' — {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise BackendUnavailableError(
                f"cannot listen on {host}:{port} ({reason}) — choose another --port"
            ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: api_host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default: api_port, 8083).")
    ] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Do not schedule runs in this process.")
    ] = False,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not execute runs in this process.")
    ] = False,
    no_web: Annotated[bool, typer.Option("--no-web", help="API only, no dashboard.")] = False,
    no_dispatcher: Annotated[
        bool,
        typer.Option("--no-dispatcher", help="Do not turn trading signals into runs here."),
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Local worker threads (runs at once).")
    ] = 2,
    log_level: Annotated[
        str, typer.Option("--log-level", help="Server log level: warning, info, debug, …")
    ] = "warning",
) -> None:
    """Serve the API and dashboard (with the scheduler, local workers and the trigger
    dispatcher) until Ctrl-C.

    On the first start it creates an admin token and prints the dashboard URL with it.
    """
    import uvicorn

    from breadthflow.api.app import create_app
    from breadthflow.api.background import Background
    from breadthflow.services.tokens import ensure_first_admin

    if concurrency < 1:
        raise InvalidInputError(f"invalid --concurrency {concurrency} — expected 1 or more")
    if log_level.lower() not in LOG_LEVELS:
        raise InvalidInputError(
            f"invalid --log-level '{log_level}' — expected one of {', '.join(LOG_LEVELS)}"
        )
    ctx = context()
    settings = ctx.settings
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"invalid --port {port} — expected 1-65535")
    _check_port(host, port)
    ctx.db  # noqa: B018 — connect and migrate now: a bad database is one line, not a 500
    new = ensure_first_admin(ctx)
    background = Background(
        ctx,
        scheduler=not no_scheduler,
        workers=0 if no_worker else concurrency,
        dispatcher=not no_dispatcher,
        warm_scan=True,
    )
    background.start()
    try:
        app = create_app(settings, include_web=not no_web, ctx=ctx, in_process=background.state)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
        parts = ["API"] + ([] if no_web else ["dashboard"])
        parts += [] if no_scheduler else ["scheduler"]
        parts += [] if no_worker else [f"{concurrency} workers"]
        parts += [] if no_dispatcher else ["trigger dispatcher"]
        out.print(f"BreadthFlow serving {', '.join(parts)} on {base}/", markup=False,
                  highlight=False)  # fmt: skip
        if new is not None:
            out.print(
                f"created admin token '{new.info.name}' (shown once; `breadthflow token` "
                "manages tokens)",
                markup=False,
                highlight=False,
            )
            out.print(f"open: {base}/?token={new.token}", markup=False, highlight=False)
        else:
            out.print(
                f"open: {base}/ (log in with your token; `breadthflow token create NAME "
                "--scope write` makes a new one)",
                markup=False,
                highlight=False,
            )
        out.print(f"API docs: {base}/docs — Ctrl-C stops", markup=False, highlight=False)
        if not _is_loopback(host) and not settings.api_read_requires_token:
            err.print(
                f"warning: listening on {host}: anyone who can reach it can read data — set "
                "BREADTHFLOW_API_READ_REQUIRES_TOKEN=true to require tokens for reads",
                markup=False,
                highlight=False,
            )
        with _stop_signals():
            uvicorn.run(app, host=host, port=port, log_level=log_level.lower())
    finally:
        background.stop()


class _Stopped(Exception):
    """SIGINT/SIGTERM after uvicorn's graceful shutdown (it re-raises the signal)."""


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """While uvicorn serves, its handlers take SIGINT/SIGTERM and shut it down gracefully,
    then raise the signal again; ours turns that into a normal exit, so the scheduler and
    workers are stopped cleanly afterwards (runs finish their unit of work)."""

    def stopped(signum: int, _frame: FrameType | None) -> None:
        raise _Stopped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
