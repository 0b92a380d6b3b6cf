"""The gateway's long-lived objects, built once per app and held on `app.state.gateway`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from serving.gateway import canonical as c
from serving.gateway.admission import UpstreamGate
from serving.gateway.dispatch import Dispatcher, Outcome
from serving.gateway.errors import PermissionDenied
from serving.gateway.gatekeeper import Gatekeeper
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.policy.keys import KeyFormatError, KeyPolicy, KeyRing
from serving.gateway.policy.limits import KeyLimits
from serving.gateway.settings import ClientKey, RouteHints, Settings, Upstream
from serving.gateway.state.counters import Counters, MemoryCounters, RedisCounters
from serving.gateway.state.factory import build_store
from serving.gateway.upstreams.base import UpstreamClient
from serving.gateway.upstreams.health import HealthChecker, PoolHealth
from serving.gateway.upstreams.http import HTTPUpstream
from serving.gateway.upstreams.http1 import Opener
from serving.gateway.upstreams.registry import build_client
from serving.gateway.upstreams.transport import Transport

log = logging.getLogger("serving.gateway.runtime")


def _transport(config: Upstream, opener: Opener | None = None) -> Transport:
    """One pool of connections per upstream (transport.py says why it has no cap)."""
    t = config.timeouts
    return Transport(connect=t.connect, read=t.stream_idle, opener=opener)


def _probe_transport(opener: Opener | None = None) -> Transport:
    """Health and readiness probes' own connections: a loaded request pool must never make a
    healthy upstream look down."""
    return Transport(connect=2.0, read=None, opener=opener)


class Gateway:
    """Settings, metrics, one client per upstream, the dispatcher and its policies.

    `openers` replaces the network under named upstreams (the HTTP client's seam, for tests
    that fake an upstream below the HTTP layer, e.g. an opener that raises)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        openers: Mapping[str, Opener] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        fakes = openers or {}
        self.upstreams: dict[str, UpstreamClient] = {
            u.name: build_client(u, _transport(u, fakes.get(u.name))) for u in settings.upstreams
        }
        self._probes: list[Transport] = []
        for u in settings.upstreams:
            client = self.upstreams[u.name]
            if isinstance(client, HTTPUpstream):
                client.gate = UpstreamGate(
                    u.name, len(u.urls), u.limits, self.metrics, client.health_flags
                )
                client.probe = _probe_transport(fakes.get(u.name))
                self._probes.append(client.probe)
        self.health_checkers = _health_checkers(settings, self.upstreams, self.metrics)
        self.keys = client_keys(settings)
        self.limits = KeyLimits(
            _counters(settings),
            self.metrics,
            prefix=settings.state.key_prefix,
            on_error=settings.state.counters.on_error,
        )
        self.dispatcher = Dispatcher(
            settings,
            self.upstreams,
            self.metrics,
            health={name: hc.pool for name, hc in self.health_checkers.items()},
        )
        self.admin_key = settings.admin.read_key() if settings.admin.enabled else None
        self.conversations = build_store(settings.state)  # Responses `store`
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

    async def admit(self, caller: Caller, model: str) -> None:
        """The calling key's policy, before dispatch: the route must be one it may use (403),
        and it must be under its limits (429, policy/limits.py)."""
        key = caller.key
        if key is None:
            return
        if key.models is not None:
            route = self.dispatcher.route(model)  # an unknown model is the client's 404
            if not key.models.intersection((route.model, *route.aliases)):
                self.metrics.key_denied.labels(key.id, route.model).inc()
                raise PermissionDenied(
                    f"this API key may not use model {model!r}",
                    param="model",
                    code="model_not_allowed",
                )
        await self.limits.admit(key)

    def model_names(self, caller: Caller) -> list[str]:
        """The model names this caller may use (every route's, on an open gateway)."""
        names = self.dispatcher.model_names()
        allowed = caller.key.models if caller.key is not None else None
        if allowed is None:
            return names
        routes = [r for r in self.settings.routes if allowed.intersection((r.model, *r.aliases))]
        return [n for n in names if any(n == r.model or n in r.aliases for r in routes)]

    async def settle(self, caller: Caller, outcome: Outcome, usage: c.Usage | None) -> None:
        """Count an answer's tokens and cost against the calling key's limits."""
        key = caller.key
        if key is None or usage is None or not key.limited:
            return
        charge = outcome.charge
        if charge is None and outcome.meter is not None:
            charge = outcome.meter.charge(outcome.route, outcome.target, usage)
        cost = charge.cost if charge is not None else None
        await self.limits.settle(key, usage.input_tokens + usage.output_tokens, cost)

    async def aclose(self) -> None:
        await asyncio.gather(*(hc.stop() for hc in self.health_checkers.values()))
        await asyncio.gather(*(u.aclose() for u in self.upstreams.values()))
        await self.conversations.aclose()
        await asyncio.gather(*(p.aclose() for p in self._probes))
        await self.limits.aclose()
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
        probe = client.probe or client.transport
        out[config.name] = HealthChecker(pool, probe, config.health_path, {})
    return out


def _counters(settings: Settings) -> Counters:
    """Redis when a URL is configured (limits shared by every replica), else this process."""
    url = settings.state.read_redis_url()
    if url:
        return RedisCounters(url, timeout=settings.state.counters.timeout)
    return MemoryCounters()


def client_keys(settings: Settings) -> KeyRing:
    """Keys clients must present, each with its policy; empty means the gateway is open (local
    use). `server.api_keys_env` keys (plain or hashed, comma-separated) share the default
    policy: no limits, not private."""
    ring = KeyRing()
    env = settings.server.api_keys_env
    if env:
        values = [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
        for n, listed in enumerate(values):
            _add(ring, listed, KeyPolicy("default"), f"{env}[{n}]")
    for i, entry in enumerate(settings.server.keys):
        policy = key_policy(entry, i)
        value = entry.read()
        if value is None:
            log.warning(
                "client key %s is not set (%s); it cannot be used",
                policy.id,
                entry.key_env or entry.key_file,
            )
            continue
        _add(ring, value, policy, policy.id)
    return ring


def key_policy(entry: ClientKey, index: int) -> KeyPolicy:
    return KeyPolicy(
        id=entry.name or f"keys[{index}]",
        private=entry.private,
        models=frozenset(entry.models) if entry.models is not None else None,
        requests_per_minute=entry.requests_per_minute,
        tokens_per_minute=entry.tokens_per_minute,
        monthly_budget_usd=entry.monthly_budget_usd,
        route_hints=entry.route_hints if entry.route_hints != RouteHints() else None,
    )


def _add(ring: KeyRing, value: str, policy: KeyPolicy, where: str) -> None:
    try:
        ring.add(value, policy)
    except KeyFormatError as exc:  # the value is never echoed: it may be a key
        log.warning("client key %s is not usable: %s", where, exc)
