"""The gateway's long-lived objects, built once per app and held on `app.state.gateway`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

import httpx

from serving.gateway.admission import UpstreamGate
from serving.gateway.dispatch import Dispatcher
from serving.gateway.gatekeeper import Gatekeeper
from serving.gateway.metrics import Metrics
from serving.gateway.settings import RouteHints, Settings, Upstream
from serving.gateway.upstreams.base import UpstreamClient
from serving.gateway.upstreams.health import HealthChecker, PoolHealth
from serving.gateway.upstreams.http import HTTPUpstream
from serving.gateway.upstreams.registry import build_client

log = logging.getLogger("serving.gateway.runtime")


def _http_client(
    config: Upstream, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One pooled client per upstream; per-read timeout is the stream idle bound.

    The pool has no connection cap: admission control (admission.py) decides how many requests
    an upstream gets, and the gateway-wide in-flight limit bounds the total, so a request never
    waits here, where a wait would look like a slow upstream."""
    t = config.timeouts
    keepalive = config.limits.max_concurrency or 256
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(
            connect=t.connect, read=t.stream_idle, write=t.connect, pool=t.connect
        ),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=keepalive),
        trust_env=False,
    )


def _probe_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """Health and readiness probes' own connections: a loaded request pool must never make a
    healthy upstream look down."""
    return httpx.AsyncClient(
        transport=transport,
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=4),
        trust_env=False,
    )


class Gateway:
    """Settings, metrics, one client per upstream, the dispatcher and its policies.

    `transports` replaces the network under named upstreams (httpx's own seam, for tests that
    fake an upstream below the HTTP layer, e.g. a transport that raises)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        fakes = transports or {}
        self.upstreams: dict[str, UpstreamClient] = {
            u.name: build_client(u, _http_client(u, fakes.get(u.name))) for u in settings.upstreams
        }
        self._probe_clients: list[httpx.AsyncClient] = []
        for u in settings.upstreams:
            client = self.upstreams[u.name]
            if isinstance(client, HTTPUpstream):
                client.gate = UpstreamGate(
                    u.name, len(u.urls), u.limits, self.metrics, client.health_flags
                )
                client.probe_http = _probe_client(fakes.get(u.name))
                self._probe_clients.append(client.probe_http)
        self.health_checkers = _health_checkers(settings, self.upstreams, self.metrics)
        keys = _client_keys(settings)
        self.api_keys = frozenset(keys)
        self.key_hints = _key_hints(settings)
        self.dispatcher = Dispatcher(
            settings,
            self.upstreams,
            self.metrics,
            health={name: hc.pool for name, hc in self.health_checkers.items()},
            private_keys=frozenset(k for k, private in keys.items() if private),
        )
        self.admin_key = settings.admin.read_key() if settings.admin.enabled else None
        self.keeper = Gatekeeper(settings.server, self.metrics)
        self.ops_key = settings.ops.read_key()

    async def start(self) -> None:
        """Start background work (pool health probes); called from the app's lifespan."""
        for checker in self.health_checkers.values():
            checker.start()

    async def ready(self) -> dict[str, bool]:
        names = list(self.upstreams)
        states = await asyncio.gather(*(self.upstreams[n].ready() for n in names))
        return dict(zip(names, states, strict=True))

    async def aclose(self) -> None:
        await asyncio.gather(*(hc.stop() for hc in self.health_checkers.values()))
        await asyncio.gather(*(u.aclose() for u in self.upstreams.values()))
        await asyncio.gather(*(c.aclose() for c in self._probe_clients))
        if self.dispatcher.decisions is not None:
            self.dispatcher.decisions.close()


def _health_checkers(
    settings: Settings, upstreams: dict[str, UpstreamClient], metrics: Metrics
) -> dict[str, HealthChecker]:
    """A checker per health-checked pool, wired into the client's endpoint pick."""
    out: dict[str, HealthChecker] = {}
    for config in settings.upstreams:
        client = upstreams[config.name]
        if not config.health_checked or not isinstance(client, HTTPUpstream):
            continue
        pool = PoolHealth(config.name, config.urls, config.health, metrics)
        client.health = pool
        probe = client.probe_http or client.http
        out[config.name] = HealthChecker(pool, probe, config.health_path, {})
    return out


def _key_hints(settings: Settings) -> dict[str, RouteHints]:
    """Routing defaults per client key (only keys that set some)."""
    out: dict[str, RouteHints] = {}
    for entry in settings.server.keys:
        key = entry.read()
        if key is not None and entry.route_hints != RouteHints():
            out[key] = entry.route_hints
    return out


def _client_keys(settings: Settings) -> dict[str, bool]:
    """Keys clients must present, each with whether it makes requests private; empty means the
    gateway is open (local use). `server.api_keys_env` keys are never private by policy."""
    out: dict[str, bool] = {}
    env = settings.server.api_keys_env
    if env:
        out.update((k.strip(), False) for k in os.environ.get(env, "").split(",") if k.strip())
    for entry in settings.server.keys:
        key = entry.read()
        if key is None:
            log.warning(
                "client key %s is not set (%s); it cannot be used",
                entry.name or "(unnamed)",
                entry.key_env or entry.key_file,
            )
            continue
        out[key] = out.get(key, False) or entry.private
    return out
