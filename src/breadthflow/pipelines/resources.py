"""What a run costs: CPU seconds and peak resident memory.

CPU time is this process's (all threads), measured as a difference, so it is the run's
when one run executes at a time. Peak memory is the process's high-water mark
(``VmHWM`` in ``/proc/self/status``); on Linux it is reset at the start of a measurement
(``/proc/self/clear_refs``), so a long-lived worker reports each run's own peak. Where
neither is available (macOS), ``getrusage``'s ``ru_maxrss`` — the peak since the process
started — is used instead.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_memory_mb() -> float | None:
    """The process's peak resident set size in MB (None when it cannot be read)."""
    with contextlib.suppress(OSError, ValueError):
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # the value is in kB
    with contextlib.suppress(OSError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in bytes on macOS, in kB elsewhere.
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    return None


def reset_peak_memory() -> bool:
    """Reset the peak-RSS counter to the current RSS (Linux ≥ 4.0); False when not possible."""
    try:
        _CLEAR_REFS.write_text("5")  # 5 = reset the peak RSS, nothing else
    except OSError:
        return False
    return True


class ResourceMeter:
    """Measure a block of work.

    >>> with ResourceMeter() as meter:
    ...     _ = sum(range(10_000))
    >>> meter.cpu_seconds >= 0 and meter.wall_seconds >= 0
    True
    """

    def __init__(self) -> None:
        self.cpu_seconds: float = 0.0
        self.wall_seconds: float = 0.0
        self.peak_memory_mb: float | None = None
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self._stopped = False

    def __enter__(self) -> ResourceMeter:
        reset_peak_memory()
        self._stopped = False
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Take the measurement (called by ``__exit__``; callable earlier, once counts)."""
        if self._stopped:
            return
        self._stopped = True
        self.cpu_seconds = time.process_time() - self._cpu0
        self.wall_seconds = time.perf_counter() - self._wall0
        self.peak_memory_mb = peak_memory_mb()
