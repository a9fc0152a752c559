"""Large arrays for the scan's compiled kernels, reused from one scan to the next.

numpy takes an array of tens of megabytes straight from the system and gives it back when
it is freed, so each whole-universe scan of a long-lived process (API server, pipeline
worker, dashboard) would have the kernel zero its ≈ 250 MB of fresh kernel outputs again —
about a tenth of a warm scan's CPU. :func:`empty` hands out views of base arrays it keeps.
A base is handed out again once its reference count shows that nothing uses it any more:
every view of a numpy array — a Polars series built on it without copying, a slice of a
slice — holds a reference to the base itself, so the count is exact. Kept bases are given
back to the system :data:`IDLE_SECONDS` after the last request, and at most
:data:`LIMIT_BYTES` of them are kept.

Thread-safe: Polars calls the kernels from its own threads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import numpy as np

__all__ = ["IDLE_SECONDS", "LIMIT_BYTES", "MIN_BYTES", "empty", "kept_bytes", "release"]

#: Smaller requests are ordinary numpy arrays: the pool is for the universe-sized columns.
MIN_BYTES = 4 << 20
#: The most the pool keeps (in use or not).
LIMIT_BYTES = 2 << 30
#: Unused bases are dropped this long after the last request.
IDLE_SECONDS = 10.0
# A base is reused for a request of at least this share of its size (a huge base is not
# tied up by a small column).
_MIN_FILL = 0.5

_lock = threading.Lock()
_bases: list[np.ndarray] = []
_last_request = 0.0
_timer: threading.Timer | None = None


def _unused(k: int) -> bool:
    # The list's reference and getrefcount's argument: nothing else holds the base.
    return sys.getrefcount(_bases[k]) == 2


def empty(size: int, dtype: type[np.generic] | np.dtype = np.float64) -> np.ndarray:
    """An uninitialised writable 1-d array of ``size`` items, like ``np.empty``."""
    kind = np.dtype(dtype)
    nbytes = size * kind.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(size, dtype=kind)
    global _last_request
    with _lock:
        _last_request = time.monotonic()
        _arm_trim()
        best = -1
        for k in range(len(_bases)):
            have = _bases[k].nbytes
            fits = nbytes <= have and nbytes >= _MIN_FILL * have
            if fits and (best < 0 or have < _bases[best].nbytes) and _unused(k):
                best = k
        if best < 0:
            # Make room by dropping unused bases, the largest first.
            kept = sum(base.nbytes for base in _bases)
            drop = set()
            for k in sorted(range(len(_bases)), key=lambda j: -_bases[j].nbytes):
                if kept + nbytes <= LIMIT_BYTES:
                    break
                if _unused(k):
                    drop.add(k)
                    kept -= _bases[k].nbytes
            _keep(lambda k: k not in drop)
            if kept + nbytes > LIMIT_BYTES:
                return np.empty(size, dtype=kind)
            # numpy asks the system for huge pages for an array this large.
            _bases.append(np.empty(nbytes, dtype=np.uint8))
            best = len(_bases) - 1
        return _bases[best][:nbytes].view(kind)


def kept_bytes() -> tuple[int, int]:
    """(bytes kept, bytes of them in use)."""
    with _lock:
        used = sum(_bases[k].nbytes for k in range(len(_bases)) if not _unused(k))
        return sum(base.nbytes for base in _bases), used


def release() -> None:
    """Give every base nothing uses back to the system (those in use stay kept)."""
    with _lock:
        _keep(lambda k: not _unused(k))


def _keep(wanted: Callable[[int], bool]) -> None:
    """Keep the bases whose index is ``wanted`` (the others are freed); under the lock."""
    _bases[:] = [_bases[k] for k in range(len(_bases)) if wanted(k)]


def _arm_trim(delay: float | None = None) -> None:
    """Release unused bases once no request came for IDLE_SECONDS; under the lock."""
    global _timer
    if _timer is None:
        _timer = threading.Timer(IDLE_SECONDS if delay is None else delay, _trim)
        _timer.daemon = True
        _timer.start()


def _trim() -> None:
    global _timer
    with _lock:
        _timer = None
        idle = time.monotonic() - _last_request
        if idle < IDLE_SECONDS:  # asked for since: look again when it has been idle long enough
            _arm_trim(IDLE_SECONDS - idle)
            return
    release()
