"""Admission control for one upstream: a concurrency limit (for the whole upstream and for each
endpoint of a pool) and a bounded FIFO wait queue with a timeout.

This, not the HTTP connection pool, decides how many requests an upstream gets: the pool is
sized so it never makes a request wait (runtime.py), because a wait there cannot be told apart
from a slow upstream and used to be counted against its breaker. A request that finds the
upstream full and the queue full, or waits longer than `queue_timeout`, fails with `Saturated`:
the chain moves on (failure reason `saturated`), no breaker hears of it, and when the whole
chain is saturated the client gets its dialect's overload answer with `retry-after`.

The slot is held for the whole upstream exchange, a stream included, and is also the
least-outstanding-requests count the endpoint pick reads. Without limits the gate is only that
pick: no queue, no waiting, no allocation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from serving.gateway.errors import Saturated
from serving.gateway.metrics import Metrics
from serving.gateway.settings import Limits

Healthy = Callable[[], list[bool] | None]  # per-endpoint health, None when the pool is unchecked


class UpstreamGate:
    """Slots of one upstream's endpoints; `acquire` returns the endpoint index to use."""

    def __init__(
        self,
        name: str,
        endpoints: int,
        limits: Limits,
        metrics: Metrics | None = None,
        healthy: Healthy = lambda: None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.inflight = [0] * endpoints
        self.total = 0
        self._healthy = healthy
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._metrics = metrics
        if metrics is not None:
            # Read when /metrics is scraped, not set on every acquire and release (a locked
            # write each, twice per request).
            metrics.upstream_in_flight.labels(name).set_function(lambda: self.total)

    def _free(self) -> int | None:
        """The endpoint with the fewest in flight among healthy ones with a free slot (all of
        them when none is known healthy); None when the upstream or every endpoint is full."""
        limits = self.limits
        if limits.max_concurrency is not None and self.total >= limits.max_concurrency:
            return None
        health = self._healthy()
        ids: list[int] | range = range(len(self.inflight))
        if health is not None and any(health):
            ids = [i for i in ids if health[i]]
        per = limits.per_endpoint
        if per is not None:
            ids = [i for i in ids if self.inflight[i] < per]
            if not ids:
                return None
        return min(ids, key=self.inflight.__getitem__)

    def _take(self, i: int) -> None:
        self.inflight[i] += 1
        self.total += 1

    async def acquire(self) -> int:
        i = self._free() if not self._waiters else None  # FIFO: no overtaking the queue
        if i is not None:
            self._take(i)
            return i
        limits = self.limits
        if len(self._waiters) >= limits.queue or limits.queue_timeout <= 0:
            raise self._saturated("queue_full", f"{self.total} in flight and the queue is full")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._queue_depth()
        try:
            async with asyncio.timeout(limits.queue_timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            if fut.done():  # handed a slot as the timer fired: use it
                return fut.result()
            raise self._saturated(
                "queue_timeout", f"no slot freed within {limits.queue_timeout:g}s"
            ) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # the slot handed to a request that went away
            raise
        finally:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)
            self._queue_depth()

    def release(self, i: int) -> None:
        self.inflight[i] -= 1
        self.total -= 1
        while self._waiters:
            j = self._free()
            if j is None:
                return
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self._take(j)
            fut.set_result(j)

    def _queue_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.upstream_queued.labels(self.name).set(len(self._waiters))

    def _saturated(self, why: str, detail: str) -> Saturated:
        if self._metrics is not None:
            self._metrics.admission_rejected.labels(self.name, why).inc()
        return Saturated(
            f"upstream {self.name!r} is at the gateway's concurrency limit ({detail})",
            retry_after=self.limits.retry_after,
            upstream=self.name,
        )
