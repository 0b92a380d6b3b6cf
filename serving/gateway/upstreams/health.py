"""Background health of a pool's endpoints, read by the least-outstanding-requests pick.

One task per checked upstream probes every endpoint (GET server root + `health_path`) each
`interval`; an endpoint turns unhealthy after `unhealthy_after` failed probes in a row and
healthy again after `healthy_after` good ones. A connection failure seen by a real request
marks the endpoint unhealthy at once (passive check), and the probes bring it back. Every
endpoint starts healthy, so a gateway serves before its first probe round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from serving.gateway.metrics import Metrics
from serving.gateway.settings import HealthCheck
from serving.gateway.upstreams.transport import Transport

log = logging.getLogger("serving.gateway.upstreams.health")


class PoolHealth:
    """Healthy flags per endpoint of one upstream, with the probe streaks behind them."""

    def __init__(self, upstream: str, urls: list[str], config: HealthCheck, metrics: Metrics):
        self.upstream = upstream
        self.urls = urls
        self.config = config
        self.healthy = [True] * len(urls)
        self._fails = [0] * len(urls)
        self._goods = [0] * len(urls)
        self._gauges = [metrics.endpoint_healthy.labels(upstream, u) for u in urls]
        self._checks = metrics.health_checks
        for g in self._gauges:
            g.set(1)

    def any_healthy(self) -> bool:
        return any(self.healthy)

    def observe(self, i: int, ok: bool) -> None:
        """One probe's result for endpoint `i`."""
        self._checks.labels(self.upstream, self.urls[i], "ok" if ok else "failed").inc()
        if ok:
            self._fails[i] = 0
            self._goods[i] += 1
            if not self.healthy[i] and self._goods[i] >= self.config.healthy_after:
                self._set(i, True, "probes succeeded")
        else:
            self._goods[i] = 0
            self._fails[i] += 1
            if self.healthy[i] and self._fails[i] >= self.config.unhealthy_after:
                self._set(i, False, f"{self._fails[i]} probes failed")

    def connection_failed(self, i: int) -> None:
        """A real request could not connect: stop sending there until a probe succeeds."""
        self._goods[i] = 0
        if self.healthy[i]:
            self._set(i, False, "a request could not connect")

    def _set(self, i: int, healthy: bool, why: str) -> None:
        log.info(
            "upstream %s endpoint %s is %s (%s)",
            self.upstream,
            self.urls[i],
            "healthy" if healthy else "unhealthy",
            why,
        )
        self.healthy[i] = healthy
        self._gauges[i].set(1 if healthy else 0)


class HealthChecker:
    """Runs the probes of one pool until stopped."""

    def __init__(
        self, pool: PoolHealth, transport: Transport, health_path: str, headers: dict[str, str]
    ) -> None:
        self.pool = pool
        self._transport = transport
        self._timeout = pool.config.timeout
        self._probe_urls = [u.removesuffix("/v1") + health_path for u in pool.urls]
        self._headers = headers
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"health:{self.pool.upstream}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def probe_all(self) -> None:
        results = await asyncio.gather(*(self._probe(u) for u in self._probe_urls))
        for i, ok in enumerate(results):
            self.pool.observe(i, ok)

    async def _run(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.pool.config.interval)

    async def _probe(self, url: str) -> bool:
        ok = await self._transport.get_ok(url, self._headers, self._timeout)
        if not ok:
            log.debug("health probe %s failed", url)
        return ok
