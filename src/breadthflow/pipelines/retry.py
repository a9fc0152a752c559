"""Retries with exponential backoff and jitter.

The delay before retry ``n`` (1-based) is ``base_delay × factor^(n-1)``, capped at
``max_delay``, then spread by ± ``jitter`` of itself so that many runners failing at
once do not retry in lock-step. ``max_attempts`` counts the first try, so there are
``max_attempts - 1`` delays. A seeded ``random.Random`` makes the delays reproducible.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from breadthflow.pipelines.definitions import RetryPolicy

T = TypeVar("T")


def backoff_delays(policy: RetryPolicy, rng: random.Random | None = None) -> Iterator[float]:
    """The waits between attempts, in seconds.

    >>> policy = RetryPolicy(max_attempts=4, base_delay=1, factor=2, jitter=0)
    >>> list(backoff_delays(policy))
    [1.0, 2.0, 4.0]
    """
    rng = rng or random.Random()
    for retry in range(1, policy.max_attempts):
        delay = min(policy.base_delay * policy.factor ** (retry - 1), policy.max_delay)
        if policy.jitter:
            delay *= 1 + policy.jitter * rng.uniform(-1.0, 1.0)
        yield max(0.0, float(delay))


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    should_retry: Callable[[Exception], bool] = lambda exc: True,
    sleep: Callable[[float], object] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, Exception, float], object] | None = None,
) -> T:
    """Call ``fn`` until it returns, at most ``policy.max_attempts`` times.

    Between attempts it calls ``on_retry(attempt, error, delay)`` (attempt = the one
    that just failed, from 1) and ``sleep(delay)``. The last error is raised when the
    attempts run out or ``should_retry(error)`` is False. Only ``Exception`` is retried:
    ``KeyboardInterrupt`` and a shutdown request pass straight through.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionError("reset")
    ...     return "ok"
    >>> retry_call(flaky, RetryPolicy(max_attempts=3), sleep=lambda s: None)
    'ok'
    """
    delays = backoff_delays(policy, rng)
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as error:
            delay = next(delays, None)
            if delay is None or not should_retry(error):
                raise
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
