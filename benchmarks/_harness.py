"""Shared benchmark plumbing: each case in a fresh child process, its own peak memory.

A benchmark script calls :func:`run_cases`, which re-runs the script as
``python SCRIPT --case NAME ARGS…`` once per case and repeat; the child prints one JSON
line (its result, including :func:`peak_rss_mb`) as the last line of stdout.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork+exec, so a case
    would report at least the parent's RSS (the parent holds the generated universe).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str | Path, case: str, args: Sequence[str]) -> dict:
    """Run one case of ``script`` in a child process and return its JSON result."""
    child = subprocess.run(
        [sys.executable, str(script), "--case", case, *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(child.stdout.strip().splitlines()[-1])


def run_cases(
    script: str | Path, cases: Sequence[str], repeat: int, args: Sequence[str]
) -> dict[str, list[dict]]:
    """Every case ``repeat`` times (interleaved), progress on stderr; results per case."""
    results: dict[str, list[dict]] = {}
    for run in range(repeat):
        for case in cases:
            result = run_child(script, case, args)
            results.setdefault(case, []).append(result)
            print(f"run {run + 1} {case}: {result['seconds']:.2f} s", file=sys.stderr)
    return results
