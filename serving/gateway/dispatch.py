"""Walks a route's chain of targets until one answers: for a generation, or for a token count.

Before any attempt, routing.py narrows the chain (privacy: local targets only; context window:
targets that can hold the prompt). Then, for each remaining target in order:

- skip it without an attempt when its pool has no healthy endpoint or its circuit is open;
- send: a same-dialect upstream gets the client's body forwarded untouched, any other upstream
  the canonical request (translated eagerly by the dialect adapter, before dispatch);
- on a failure, retry the same target while retry.py allows (backoff, `retry-after` up to a
  cap), then move on when the failure's reason is in the upstream's `fallback_on`; anything else
  (a client's bad request) goes back to the client at once.

Upstream clients map every failure into the error hierarchy at their boundary
(upstreams/boundary.py), so only `GatewayError`s reach this walk. Streams are primed by the
upstream clients (the first token has arrived before a stream is returned), so every failover
happens before the client has seen a byte; a stream that breaks later can be continued on the
chain's next capable target (`Outcome.continuer`, policy/continuation.py). Every decision is
logged at debug level and counted; nothing here ever logs request content. What the transport
said about the caller (the private header, the key's policy) arrives as a plain `Caller`
argument.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError, InvalidRequest, NotFound
from serving.gateway.jsoncodec import dumpb
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.policy.circuit import Breaker, Circuits, Clock
from serving.gateway.policy.context import with_max_tokens
from serving.gateway.policy.continuation import Continuer
from serving.gateway.policy.cost import Charge, CostMeter, load_price_table
from serving.gateway.policy.decisions import DecisionLog
from serving.gateway.policy.fallback import (
    Failure,
    classify,
    counts_against_circuit,
    final_error,
)
from serving.gateway.policy.privacy import PrivacyPolicy
from serving.gateway.policy.retry import Random, RetryPolicy, Sleep
from serving.gateway.policy.router import Decision
from serving.gateway.policy.routing import Plan, Planner
from serving.gateway.policy.streams import guard_bytes
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
T = TypeVar("T")
# One attempt at one target: what the operation sends, given the target and its client.
Send = Callable[[Target, UpstreamClient], Awaitable[T]]


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
    max_tokens: int | None = None  # the output budget, when lowered to fit the target's window
    continuer: Continuer | None = None  # for a stream: the rest of the chain, should it break
    deadline: float | None = None  # for a stream: when its `timeouts.total` runs out (loop time)
    decision: Decision | None = None  # which rule chose the chain (policy/router.py)
    decisions: DecisionLog | None = None  # the opt-in decision log, written when it ends


@dataclass(slots=True)
class Counted:
    """A token count, and which target of which route gave it (None: no target could count,
    and `tokens` is the route's estimate from the request's size)."""

    tokens: int
    route: Route
    target: Target | None
    fallbacks: list[str] = field(default_factory=list)
    private: str | None = None


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        upstreams: dict[str, UpstreamClient],
        metrics: Metrics,
        *,
        health: Mapping[str, PoolHealth] | None = None,
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
        self.privacy = PrivacyPolicy(settings.privacy)
        self.planner = Planner(settings, upstreams, metrics, self.privacy)
        self.meter = CostMeter(settings, metrics, load_price_table())
        path = settings.routing.decision_log
        self.decisions = DecisionLog(path) if path else None

    def route(self, model: str) -> Route:
        route = self._settings.route_for(model)
        if route is None:
            known = ", ".join(sorted(self.model_names()))
            raise NotFound(
                f"model {model!r} not found; this gateway serves: {known}",
                param="model",
                code="model_not_found",
            )
        return route

    def model_names(self) -> list[str]:
        return [name for r in self._settings.routes for name in (r.model, *r.aliases)]

    async def dispatch(
        self,
        dialect: str,
        model: str,
        call: RawCall,
        request: c.ChatRequest | InvalidRequest,
        caller: Caller,
    ) -> Outcome:
        """Generate: the first target that answers. `request` is the canonical form of `call`,
        or why it has none (embeddings; `n > 1`): then only same-dialect targets can serve it,
        the others are skipped uncontacted, and with none left that reason is the client's 400.
        """
        asked = self.route(model)
        facts = await self.planner.facts(call)
        decision = await self.planner.router.decide(asked, facts, caller.hints)
        route = decision.route
        canonical = request if isinstance(request, c.ChatRequest) else None
        plan = await self.planner.plan(route, facts, caller, canonical)

        async def send(target: Target, upstream: UpstreamClient) -> Result:
            budget = plan.max_tokens.get(target.label)
            if budget is not None:  # the window holds the prompt, not the asked-for output
                self._metrics.max_tokens_lowered.labels(route.model, target.label).inc()
            if upstream.speaks(dialect):
                return await upstream.forward(lowered_call(call, dialect, budget), target.model)
            assert canonical is not None  # other dialects are skipped without one
            req = lowered_request(canonical, budget)
            if call.stream:
                return await upstream.stream(req, target.model)
            return await upstream.complete(req, target.model)

        native = None if isinstance(request, c.ChatRequest) else (dialect, request)
        began = asyncio.get_running_loop().time()
        result, target, failures, started = await self._walk(route, plan, send, native)
        result = self._guarded(result, target, self.circuits[target.label], started)
        outcome = self._outcome(result, route, target, failures, plan.private)
        outcome.escalated_from = asked.model if asked is not route else None
        outcome.decision = decision
        outcome.decisions = self.decisions
        outcome.max_tokens = plan.max_tokens.get(target.label)
        if isinstance(result, RawStream | EventStream):
            outcome.deadline = started + self._settings.upstream(target.upstream).timeouts.total
            if canonical is not None:
                outcome.continuer = self._continuer(route, plan, target, canonical, began)
        return outcome

    def _continuer(
        self, route: Route, plan: Plan, served: Target, request: c.ChatRequest, began: float
    ) -> Continuer | None:
        """What continues this request's stream if it breaks mid-answer (None: nothing can).
        Only the plan's targets after the one serving are candidates, so privacy and context
        routing hold for a continuation too."""
        cfg = route.continuation
        rest = plan.targets[plan.targets.index(served) + 1 :]
        if not cfg.enabled or cfg.max_continuations == 0 or not rest:
            return None
        first = self._settings.upstream(route.targets[0].upstream)
        return Continuer(
            route,
            rest,
            request=request,
            budgets=plan.max_tokens,
            settings=self._settings,
            upstreams=self._upstreams,
            circuits=self.circuits,
            health=self._health,
            metrics=self._metrics,
            deadline=began + (cfg.deadline or first.timeouts.total),
        )

    async def count(
        self, model: str, call: RawCall, request: c.ChatRequest, caller: Caller
    ) -> Counted:
        """Count input tokens on the first target that can: the same chain, plan, breakers,
        health and metrics as a generation. Counting has no same-dialect shortcut: each
        upstream counts a canonical request its own way (vLLM's /tokenize renders the chat
        template; Anthropic and Gemini have counting endpoints).

        A target that has no counting endpoint (a 404: hosted OpenAI has no /tokenize) is
        passed over without counting against its circuit; when no target could count, the
        answer is the route's estimate from the request's facts (what context routing uses),
        which the runner marks as estimated."""
        route = self.route(model)
        facts = await self.planner.facts(call)
        plan = await self.planner.plan(route, facts, caller, request, fit=False)

        async def send(target: Target, upstream: UpstreamClient) -> int | None:
            try:
                return await upstream.count_tokens(request, target.model)
            except NotFound:
                return None  # it answered, only not this question: no failure of its health

        try:
            tokens, target, failures, _ = await self._walk(route, plan, send, None)
        except _Uncounted as exc:
            ctx = self.planner.context
            estimate = ctx.text_tokens(facts) + ctx.attachment_tokens(facts, "")
            log.debug("route %s: no target could count; the estimate %d", route.model, estimate)
            described = [f.describe() for f in exc.failures]
            return Counted(estimate, route, None, described, plan.private)
        assert tokens is not None
        return Counted(tokens, route, target, [f.describe() for f in failures], plan.private)

    async def _walk(
        self,
        route: Route,
        plan: Plan,
        send: Send[T],
        native: tuple[str, InvalidRequest] | None,
    ) -> tuple[T, Target, list[Failure], float]:
        """The plan's targets in order until one answers: the answer, who gave it, who failed
        before it, and when its successful attempt started. With `native` (a dialect, and why
        the request has no canonical form) only targets of that dialect are tried."""
        failures = list(plan.skipped)
        last = len(plan.targets) - 1
        for i, target in enumerate(plan.targets):
            upstream = self._upstreams[target.upstream]
            if native is not None and not upstream.speaks(native[0]):
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
                result, started = await self._attempt(target, upstream, send, breaker, i < last)
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
            if result is None:  # the target cannot do this (counting without an endpoint)
                failures.append(Failure(target.label, "unsupported", None))
                continue
            return result, target, failures, started
        if any(f.reason == "unsupported" for f in failures):
            raise _Uncounted(failures)
        if native is not None and failures and all(f.reason == "dialect" for f in failures):
            raise native[1]
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
        self,
        target: Target,
        upstream: UpstreamClient,
        send: Send[T],
        breaker: Breaker,
        has_next: bool,
    ) -> tuple[T, float]:
        """One target, with its retries; the circuit hears every try's outcome."""
        retry = self._retry[target.upstream]
        n = 0
        while True:
            settled = False
            started = asyncio.get_running_loop().time()
            try:
                result = await send(target, upstream)
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
                if wait is not None and reason == "connect" and has_next:
                    wait, why = self._reconnect(target.upstream, wait, why)
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
            m = self._metrics
            m.child(m.upstream_attempts, target.label, "ok").inc()  # per request: cached
            return result, started

    def _reconnect(self, upstream: str, wait: float, why: str) -> tuple[float | None, str]:
        """A refused or timed-out connect is not transient the way a 503 is: with a next target
        waiting, dialling the same dead address again only adds the backoff. Retry only when
        another healthy endpoint of the upstream could take it."""
        pool = self._health.get(upstream)
        if pool is not None and pool.any_healthy():
            return wait, why
        return None, "no other endpoint; the next target answers sooner"

    def _guarded(self, result: Result, target: Target, breaker: Breaker, started: float) -> Result:
        """A stream, bounded by the target's total time and reporting breaks to its circuit."""
        if not isinstance(result, RawStream | EventStream):
            return result
        total = self._settings.upstream(target.upstream).timeouts.total

        def broke() -> None:
            log.debug("%s: stream broke after it started", target.label)
            breaker.record(failed=True)

        name, deadline = target.upstream, started + total
        result.on_break = broke
        if isinstance(result, RawStream):
            result.rest = guard_bytes(
                result.rest, name=name, total=total, deadline=deadline, on_failure=broke
            )
        else:  # its `rest` (upstreams/base.bounded_events) reads the bound from the stream
            result.deadline, result.total = deadline, total
        return result

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


class _Uncounted(Exception):
    """No target answered and at least one cannot count at all: count() answers an estimate."""

    def __init__(self, failures: list[Failure]) -> None:
        super().__init__("no target could count")
        self.failures = failures


def lowered_call(call: RawCall, dialect: str, budget: int | None) -> RawCall:
    """The client's body with its output budget lowered, for a same-dialect upstream."""
    if budget is None:
        return call
    body = with_max_tokens(call.parsed, dialect, budget)
    return dataclasses.replace(call, body=dumpb(body), parsed=body)


def lowered_request(req: c.ChatRequest, budget: int | None) -> c.ChatRequest:
    if budget is None:
        return req
    return dataclasses.replace(req, sampling=dataclasses.replace(req.sampling, max_tokens=budget))
