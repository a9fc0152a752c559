"""BreadthFlow: market-breadth signal platform."""

import os as _os

# Polars configures its allocator (jemalloc) to give freed memory back to the system after
# half a second, so each whole-universe scan of a long-lived process (API server, pipeline
# worker, dashboard) faults its gigabyte of working memory in again — a third of a warm
# scan's time on a small VM. Here freed memory stays the process's own for ten seconds,
# then is handed back lazily (MADV_FREE: the kernel takes the pages when it needs them,
# and until then the next scan reuses them without a fault) instead of unmapped. Polars
# appends this to its own defaults (the last value wins); it must be in the environment
# before Polars loads, and a value already set wins. See docs/configuration.md ("Memory").
_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000,muzzy_decay_ms:-1")

__version__ = "0.1.0"
