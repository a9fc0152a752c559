"""Is a process alive — and is the worker a run names one of ours that died?

Workers are named ``host:pid`` or ``host:pid/thread`` (:func:`~breadthflow.pipelines.
lifecycle.default_worker`). A run whose worker is on this host with a pid that no longer
runs lost its worker for sure — no need to wait for its heartbeat to go stale.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped) does not count."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/status").read_text()
        if "\nState:\tZ" in status:
            return False
    return True


def local_worker_dead(worker: str | None, host: str | None = None) -> bool:
    """True when ``worker`` is a process of this host (not this process) that is gone."""
    if not worker:
        return False
    name, sep, rest = worker.rpartition(":")
    if not sep or name != (host or socket.gethostname()):
        return False
    try:
        pid = int(rest.split("/", 1)[0])
    except ValueError:
        return False
    return pid != os.getpid() and not pid_alive(pid)
