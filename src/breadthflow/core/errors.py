"""Exceptions that carry a message meant for the user.

Anything derived from :class:`BreadthFlowError` is a user-facing problem (bad input,
unreachable backend, unknown name) and is shown as one line with a non-zero exit code by
the CLI and as a 4xx by the API. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BreadthFlowError(Exception):
    """Base class for errors whose message is shown to the user as is."""

    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInputError(BreadthFlowError):
    """A value given by the user is malformed or out of range."""

    exit_code = 2
    http_status = 422


class NotFoundError(BreadthFlowError):
    """A named thing (provider, universe, symbol, record) does not exist."""

    exit_code = 2
    http_status = 404


class ConfigError(BreadthFlowError):
    """The configuration is invalid or names a backend that cannot be used."""

    exit_code = 3
    http_status = 500


class BackendUnavailableError(BreadthFlowError):
    """A configured backend (database, lake, bus) cannot be reached or written."""

    exit_code = 4
    http_status = 503


class DataError(BreadthFlowError):
    """Market data from a provider or a file is malformed."""

    exit_code = 5
    http_status = 422


class ProviderError(BreadthFlowError):
    """A provider failed to deliver data for a symbol (network, not found, throttled)."""

    exit_code = 5
    http_status = 502


def unknown_name(kind: str, value: str, known: Iterable[str]) -> NotFoundError:
    """Build the standard "unknown X" error, with a suggestion when one is close.

    >>> str(unknown_name("universe", "sp5000", ["sample-sp500", "dow30"]))
    "unknown universe 'sp5000' — known: dow30, sample-sp500"
    """
    names = sorted(known)
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.75)
    hint = f" — did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return NotFoundError(
        f"unknown {kind} '{value}'{hint}" + (f" — known: {shown}" if not close else "")
    )
