"""Which targets of a route's chain a request may use, decided before any attempt.

Two filters, in order: privacy (a private request keeps only `local` targets) and context
window (targets that cannot hold the prompt plus the requested output are dropped). Both are
recorded as skips, so the client's `x-serving-fallback` header and the metrics say why a target
was passed over. Circuit and health skips happen later, at attempt time (dispatch.py), because
they change from one moment to the next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.policy.context import ContextPolicy, requested_output
from serving.gateway.policy.fallback import Failure
from serving.gateway.policy.privacy import PrivacyPolicy
from serving.gateway.settings import Route, Settings, Target
from serving.gateway.upstreams.base import RawCall, UpstreamClient

log = logging.getLogger("serving.gateway.policy.routing")


@dataclass(slots=True)
class Plan:
    targets: list[Target]
    skipped: list[Failure] = field(default_factory=list)
    private: str | None = None  # why the request is private ("header", "key", a detector)
    prompt_tokens: int = 0


class Planner:
    def __init__(
        self,
        settings: Settings,
        upstreams: Mapping[str, UpstreamClient],
        metrics: Metrics,
        privacy: PrivacyPolicy,
    ) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._metrics = metrics
        self.privacy = privacy
        self.context = ContextPolicy(settings.context)
        self._routes = {r.model: r for r in settings.routes}
        self._local = {u.name: u.locality == "local" for u in settings.upstreams}
        # Routes with no hosted target need no privacy scan: nothing could leak.
        self._mixed = {
            r.model: not all(self._local[t.upstream] for t in r.targets) for r in settings.routes
        }

    def escalated(self, route: Route, call: RawCall) -> Route | None:
        """The route a complex request is sent to instead, per `route.escalate`."""
        rule = route.escalate
        if rule is None:
            return None
        big = (
            rule.min_prompt_tokens is not None
            and self.context.prompt_estimate(call.body) >= rule.min_prompt_tokens
        )
        if big or (rule.tools and bool(call.parsed.get("tools"))):
            log.debug("route %s: escalated to %s", route.model, rule.to)
            self._metrics.escalations.labels(route.model, rule.to).inc()
            return self._routes[rule.to]
        return None

    def is_local(self, target: Target) -> bool:
        return self._local[target.upstream]

    async def plan(
        self, route: Route, call: RawCall, request: c.ChatRequest | None, caller: Caller
    ) -> Plan:
        """The targets `request` may use, in order; `caller` is what the transport said."""
        plan = Plan(list(route.targets), private=self.private_reason(route, call.body, caller))
        if plan.private is not None:
            self._metrics.private_requests.labels(route.model, plan.private).inc()
            kept = [t for t in plan.targets if self.is_local(t)]
            self._skip(route, plan, [t for t in plan.targets if not self.is_local(t)], "private")
            plan.targets = kept
        if self._settings.context.enabled and plan.targets:
            await self._fit_context(route, call, plan, request)
        return plan

    def private_reason(self, route: Route, body: bytes, caller: Caller) -> str | None:
        """Why a request is private ("header", "key", a detector name), or None."""
        marked = caller.private
        if marked is not None or not self._mixed[route.model]:
            return marked
        found = self.privacy.scan(body)
        if found is not None:
            log.debug("request to %s is private: detector %s matched", route.model, found)
        return found

    async def _fit_context(
        self, route: Route, call: RawCall, plan: Plan, request: c.ChatRequest | None
    ) -> None:
        ctx = self.context
        output = requested_output(call.parsed, self._settings.context.default_output_tokens)
        prompt = ctx.prompt_estimate(call.body)
        if (
            request is not None
            and self._settings.context.tokenize_upstream
            and ctx.borderline(plan.targets, prompt, output)
        ):
            prompt = await self._exact(route, prompt, request)
        plan.prompt_tokens = prompt
        self._metrics.prompt_tokens_estimated.labels(route.model).observe(prompt)
        too_small = [t for t in plan.targets if not ctx.fits(t, prompt, output)]
        if too_small:
            self._skip(route, plan, too_small, "context_window")
            plan.targets = [t for t in plan.targets if t not in too_small]

    async def _exact(self, route: Route, estimate: int, request: c.ChatRequest) -> int:
        """The tokenizer engine's count; the estimate when it cannot answer."""
        name = self._settings.context.tokenize_upstream
        assert name is not None
        model = next((t.model for t in route.targets if t.upstream == name), None)
        if model is None:
            return estimate
        try:
            return await self._upstreams[name].count_tokens(request, model)
        except GatewayError as exc:
            log.warning("exact token count on %s failed (%s); using the estimate", name, exc)
            self._metrics.upstream_attempts.labels(f"{name}/{model}", "tokenize_failed").inc()
            return estimate

    def _skip(self, route: Route, plan: Plan, targets: list[Target], reason: str) -> None:
        for t in targets:
            log.debug("route %s: skipping %s (%s)", route.model, t.label, reason)
            self._metrics.skips.labels(route.model, t.label, reason).inc()
            plan.skipped.append(Failure(t.label, reason, None))
