"""Importing breadthflow before Polars keeps freed memory for the next big allocation.

Polars' allocator (jemalloc) otherwise returns freed pages to the system at once, and a
process that scans the universe again faults its working memory back in each time. After
ten idle seconds the pages are handed back lazily (MADV_FREE), so a scan after a pause
still finds them unless the system needed the memory meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, time
if sys.argv[1] == "breadthflow":
    import breadthflow  # noqa: F401  (before Polars, like every entry point)
import os
import polars as pl

def allocate():
    return pl.select((pl.int_range(0, 20_000_000, dtype=pl.Int64) * 2).alias("x"))

allocate()
time.sleep(float(sys.argv[2]))  # Polars alone gives freed pages back after 0.5–1 s
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kept = allocate()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
      os.environ.get("_RJEM_MALLOC_CONF", ""))
"""
PAGES = 20_000_000 * 8 // 4096  # the second frame's pages


def start(first: str, pause: float = 2.0, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"} | env
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, first, str(pause)],
        stdout=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip


def result(child: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    faults, _, conf = out.strip().partition(" ")
    return int(faults), conf


def probe(first: str, **env: str) -> tuple[int, str]:
    return result(start(first, **env))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc build of Polars")
def test_a_second_large_allocation_reuses_the_freed_pages() -> None:
    faults, conf = probe("breadthflow")
    # Polars puts its own defaults first; ours come after them, and the last value wins.
    assert conf.endswith(",dirty_decay_ms:10000,muzzy_decay_ms:-1")
    assert faults < PAGES // 10
    # Without it (Polars imported alone) every page is faulted in again: the probe measures.
    faults, conf = probe("polars")
    assert "10000" not in conf and faults > PAGES // 2


def test_a_configuration_set_by_the_user_wins() -> None:
    _, conf = probe("breadthflow", _RJEM_MALLOC_CONF="dirty_decay_ms:0")
    assert conf.endswith(",dirty_decay_ms:0") and "10000" not in conf


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc build of Polars")
def test_after_a_pause_the_pages_are_still_there_unless_the_system_took_them() -> None:
    """Past the ten seconds the freed pages are given back lazily: a scan a minute later
    (the dashboard, a scheduled pipeline) does not fault them in again — where unmapping
    them, as muzzy_decay_ms:10000 did, faults every page."""
    pause = 12.0  # past the ten seconds, and the decay is applied on the next allocation
    ours = start("breadthflow", pause)
    unmapping = start("breadthflow", pause,
                      _RJEM_MALLOC_CONF="dirty_decay_ms:10000,muzzy_decay_ms:10000")  # fmt: skip
    faults, _ = result(ours)
    control, _ = result(unmapping)
    assert faults < PAGES // 10
    assert control > PAGES // 2  # the probe measures
