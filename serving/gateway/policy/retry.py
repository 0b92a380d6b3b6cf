"""Retries on one target before the chain moves on: exponential backoff with jitter, honouring
the upstream's `retry-after` / `retry-after-ms` up to a cap.

A wait longer than the cap is never served: the next target is usually a better bet than
holding the client (Portkey caps at 60 s; we cap lower by default because a chain exists).
Sleep and randomness are injected so tests neither sleep nor flake.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from serving.gateway.settings import FailureReason
from serving.gateway.settings import Retry as RetryConfig

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


class RetryPolicy:
    def __init__(
        self,
        config: RetryConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
    ) -> None:
        self.config = config
        self._retry_on = frozenset(config.retry_on)
        self.sleep = sleep
        self._rand = rand

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (0-based), jitter applied."""
        c = self.config
        base = min(c.backoff_max, c.backoff_base * (2.0**retry))
        return base * (1.0 - c.jitter * self._rand())

    def delay(
        self, retry: int, reason: FailureReason, retry_after: float | None
    ) -> tuple[float | None, str]:
        """How long to wait before retry number `retry`, or None to move on; and why."""
        if reason not in self._retry_on:
            return None, "not retried"
        if retry >= self.config.attempts:
            return None, "retries exhausted"
        wait = self.backoff(retry)
        if retry_after is not None:
            if retry_after > self.config.retry_after_cap:
                return None, f"retry-after {retry_after:g}s exceeds the cap"
            wait = max(wait, retry_after)
        return wait, "backoff"
