"""Walks a route's chain of targets until one answers.

Before any attempt, routing.py narrows the chain (privacy: local targets only; context window:
targets that can hold the prompt). Then, for each remaining target in order:

- skip it without an attempt when its pool has no healthy endpoint or its circuit is open;
- send: a same-dialect upstream gets the client's body forwarded untouched, any other upstream
  the canonical request (built at most once);
- on a failure, retry the same target while retry.py allows (backoff, `retry-after` up to a
  cap), then move on when the failure's reason is in the upstream's `fallback_on`; anything else
  (a client's bad request) goes back to the client at once.

Streams are primed by the upstream clients (the first event has arrived before a stream is
returned), so every failover happens before the client has seen a byte. Every decision is
logged at debug level and counted; nothing here ever logs request content.

Privacy signals from the transport (header, API key) reach the dispatcher through `caller`, a
context variable owned by this instance and set per request by `PrivacyMiddleware` (app.py):
every dialect's router, present and future, is covered without passing it along by hand.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError, NotFound
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.policy.circuit import Breaker, Circuits, Clock
from serving.gateway.policy.cost import Charge, CostMeter, load_price_table
from serving.gateway.policy.fallback import (
    Failure,
    classify,
    counts_against_circuit,
    final_error,
)
from serving.gateway.policy.privacy import PrivacyPolicy
from serving.gateway.policy.retry import Random, RetryPolicy, Sleep
from serving.gateway.policy.routing import Planner
from serving.gateway.policy.streams import guard_bytes, guard_events
from serving.gateway.settings import Route, Settings, Target
from serving.gateway.upstreams.base import (
    EventStream,
    RawCall,
    RawResponse,
    RawStream,
    UpstreamClient,
)
from serving.gateway.upstreams.health import PoolHealth

log = logging.getLogger("serving.gateway.dispatch")

Result = RawResponse | RawStream | c.ChatResponse | EventStream


@dataclass(slots=True)
class Outcome:
    result: Result
    route: Route
    target: Target
    fallbacks: list[str] = field(default_factory=list)
    private: str | None = None
    charge: Charge | None = None  # known up front for whole (non-streamed) answers
    meter: CostMeter | None = None
    escalated_from: str | None = None  # the route asked for, when complexity routing moved it


class _Canonical:
    """The canonical request, built on first use and at most once per request."""

    __slots__ = ("_build", "_value")

    def __init__(self, build: Callable[[], c.ChatRequest]) -> None:
        self._build = build
        self._value: c.ChatRequest | None = None

    def get(self) -> c.ChatRequest:
        if self._value is None:
            self._value = self._build()
        return self._value


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        upstreams: dict[str, UpstreamClient],
        metrics: Metrics,
        *,
        health: Mapping[str, PoolHealth] | None = None,
        private_keys: frozenset[str] = frozenset(),
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        rand: Random = random.random,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._metrics = metrics
        self._health = dict(health or {})
        targets = {t.label: t for r in settings.routes for t in r.targets}
        circuit_cfg = {
            label: settings.circuit_for(settings.upstream(t.upstream))
            for label, t in targets.items()
        }
        self.circuits = Circuits(circuit_cfg.items(), metrics, clock or time.monotonic)
        self._retry = {
            u.name: RetryPolicy(settings.retry_for(u), sleep=sleep, rand=rand)
            for u in settings.upstreams
        }
        self._fallback_on = {
            u.name: frozenset(settings.fallback_on_for(u)) for u in settings.upstreams
        }
        self.caller: ContextVar[Caller | None] = ContextVar(
            f"serving_caller_{id(self)}", default=None
        )
        self.privacy = PrivacyPolicy(settings.privacy, private_keys)
        self.planner = Planner(settings, upstreams, metrics, self.privacy, self.caller)
        self.meter = CostMeter(settings, metrics, load_price_table())

    def route(self, model: str) -> Route:
        route = self._settings.route_for(model)
        if route is None:
            known = ", ".join(sorted(self.model_names()))
            raise NotFound(
                f"model {model!r} not found; this gateway serves: {known}", param="model"
            )
        return route

    def model_names(self) -> list[str]:
        return [name for r in self._settings.routes for name in (r.model, *r.aliases)]

    async def dispatch(
        self,
        dialect: str,
        model: str,
        call: RawCall,
        to_canonical: Callable[[], c.ChatRequest],
    ) -> Outcome:
        route = self.route(model)
        asked = route
        route = self.planner.escalated(route, call) or route
        canonical = _Canonical(to_canonical)
        plan = await self.planner.plan(route, call, canonical.get)
        failures = list(plan.skipped)
        for target in plan.targets:
            if call.native_only and self._upstreams[target.upstream].dialect != dialect:
                failures.append(Failure(target.label, "dialect", None))
                continue
            breaker = self.circuits[target.label]
            skip = self._unavailable(target, breaker)
            if skip is not None:
                log.debug("route %s: skipping %s (%s)", route.model, target.label, skip)
                self._metrics.skips.labels(route.model, target.label, skip).inc()
                self._metrics.fallbacks.labels(route.model, skip).inc()
                failures.append(Failure(target.label, skip, None))
                continue
            try:
                result = await self._attempt(dialect, target, call, canonical, breaker)
            except GatewayError as exc:
                reason = classify(exc)
                if reason not in self._fallback_on[target.upstream]:
                    log.debug(
                        "route %s: %s failed (%s); back to the client",
                        route.model,
                        target.label,
                        reason,
                    )
                    raise
                log.debug("route %s: %s failed (%s); moving on", route.model, target.label, reason)
                self._metrics.fallbacks.labels(route.model, reason).inc()
                failures.append(Failure(target.label, reason, exc))
                continue
            outcome = self._outcome(result, route, target, failures, plan.private)
            outcome.escalated_from = asked.model if asked is not route else None
            return outcome
        blocked = plan.private is not None and any(f.reason == "private" for f in failures)
        if blocked:
            self._metrics.privacy_blocked.labels(route.model).inc()
        raise final_error(route.model, failures, blocked)

    def _unavailable(self, target: Target, breaker: Breaker) -> str | None:
        """Why a target gets no attempt now, if it does not. Health first: a skip for health
        must not use up one of a half-open circuit's probe slots."""
        pool = self._health.get(target.upstream)
        if pool is not None and not pool.any_healthy():
            return "unhealthy"
        if not breaker.allow():
            return "circuit_open"
        return None

    async def _attempt(
        self, dialect: str, target: Target, call: RawCall, canonical: _Canonical, breaker: Breaker
    ) -> Result:
        """One target, with its retries; the circuit hears every try's outcome."""
        retry = self._retry[target.upstream]
        n = 0
        while True:
            settled = False
            started = asyncio.get_running_loop().time()
            try:
                result = await self._send(dialect, target, call, canonical)
                settled = True
            except GatewayError as exc:
                settled = True
                reason = classify(exc)
                if counts_against_circuit(reason):
                    breaker.record(failed=True)
                else:
                    breaker.release()
                self._metrics.upstream_attempts.labels(target.label, type(exc).__name__).inc()
                wait, why = retry.delay(n, reason, exc.retry_after)
                if wait is None or not breaker.allow():
                    log.debug("%s: %s, not retrying (%s)", target.label, reason, why)
                    raise
                log.debug("%s: %s, retry %d in %.3fs", target.label, reason, n + 1, wait)
                self._metrics.retries.labels(target.label, reason).inc()
                await retry.sleep(wait)
                n += 1
                continue
            finally:
                if not settled:  # cancelled (the client went away): free a half-open slot
                    breaker.release()
            breaker.record(failed=False)
            self._metrics.upstream_attempts.labels(target.label, "ok").inc()
            return self._guarded(result, target, breaker, started)

    def _guarded(self, result: Result, target: Target, breaker: Breaker, started: float) -> Result:
        """A stream, bounded by the target's total time and reporting breaks to its circuit."""
        if not isinstance(result, RawStream | EventStream):
            return result
        total = self._settings.upstream(target.upstream).timeouts.total

        def broke() -> None:
            log.debug("%s: stream broke after it started", target.label)
            breaker.record(failed=True)

        name, deadline = target.upstream, started + total
        if isinstance(result, RawStream):
            result.rest = guard_bytes(
                result.rest, name=name, total=total, deadline=deadline, on_failure=broke
            )
        else:
            result.rest = guard_events(
                result.rest, name=name, total=total, deadline=deadline, on_failure=broke
            )
        return result

    async def _send(
        self, dialect: str, target: Target, call: RawCall, canonical: _Canonical
    ) -> Result:
        upstream = self._upstreams[target.upstream]
        if upstream.dialect == dialect:
            return await upstream.forward(call, target.model)
        if call.stream:
            return await upstream.stream(canonical.get(), target.model)
        return await upstream.complete(canonical.get(), target.model)

    def _outcome(
        self,
        result: Result,
        route: Route,
        target: Target,
        failures: list[Failure],
        private: str | None,
    ) -> Outcome:
        usage = result.usage if isinstance(result, RawResponse | c.ChatResponse) else None
        charge = self.meter.charge(route, target, usage) if usage is not None else None
        reasons = [f.describe() for f in failures]
        return Outcome(result, route, target, reasons, private, charge, self.meter)
