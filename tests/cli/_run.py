"""Run the real console entry point in-process and capture exit code and output."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from breadthflow.cli.app import main
from breadthflow.core.config import get_settings
from breadthflow.store.db import close_all


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    get_settings.cache_clear()
    close_all()
    capsys.readouterr()
    old = sys.argv
    sys.argv = ["breadthflow", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """A user mistake: non-zero exit, one line on stderr, no traceback."""
    assert result.code != 0, result
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
