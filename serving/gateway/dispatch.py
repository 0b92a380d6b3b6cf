"""Walks a route's chain of targets until one answers.

For each target: a same-dialect upstream gets the client's body forwarded untouched; any other
upstream gets the canonical request. Retryable failures (and a context window too small for the
prompt) move on to the next target; request errors go back to the client at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from serving.gateway import canonical as c
from serving.gateway.errors import (
    ContextWindowExceeded,
    GatewayError,
    NoHealthyTarget,
    NotFound,
)
from serving.gateway.metrics import Metrics
from serving.gateway.settings import Route, Settings, Target
from serving.gateway.upstreams.base import (
    EventStream,
    RawCall,
    RawResponse,
    RawStream,
    UpstreamClient,
)

log = logging.getLogger("serving.gateway.dispatch")

Result = RawResponse | RawStream | c.ChatResponse | EventStream


@dataclass(slots=True)
class Outcome:
    result: Result
    route: Route
    target: Target
    fallbacks: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self, settings: Settings, upstreams: dict[str, UpstreamClient], metrics: Metrics
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._metrics = metrics

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
        canonical: c.ChatRequest | None = None
        failures: list[GatewayError] = []
        reasons: list[str] = []
        for target in route.targets:
            upstream = self._upstreams[target.upstream]
            label = f"{target.upstream}/{target.model}"
            try:
                if upstream.dialect == dialect:
                    result: Result = await upstream.forward(call, target.model)
                else:
                    canonical = canonical or to_canonical()
                    if call.stream:
                        result = await upstream.stream(canonical, target.model)
                    else:
                        result = await upstream.complete(canonical, target.model)
            except GatewayError as exc:
                self._metrics.upstream_attempts.labels(label, type(exc).__name__).inc()
                if not (exc.retryable or isinstance(exc, ContextWindowExceeded)):
                    raise
                failures.append(exc)
                reason = _reason(exc)
                reasons.append(f"{label}:{reason}")
                self._metrics.fallbacks.labels(route.model, reason).inc()
                log.debug("target %s failed (%s); trying the next one", label, reason)
                continue
            self._metrics.upstream_attempts.labels(label, "ok").inc()
            return Outcome(result, route, target, reasons)
        if len(failures) == 1:
            raise failures[0]
        summary = "; ".join(f"{r} ({e})" for r, e in zip(reasons, failures, strict=True))
        raise NoHealthyTarget(f"every target for {route.model!r} failed: {summary}")


def _reason(exc: GatewayError) -> str:
    """A bounded label for why the chain moved on."""
    return {
        "UpstreamUnavailable": "connect",
        "UpstreamTimeout": "timeout",
        "RateLimited": "rate_limited",
        "Overloaded": "overloaded",
        "ContextWindowExceeded": "context_window",
    }.get(type(exc).__name__, "upstream_error")
