"""Which targets of a route's chain a request may use, decided before any attempt.

The planner reads the request's facts (facts.py, built once per request) and the caller's
marks, both passed in, never the request's bytes. Which route's chain serves is chosen first
(router.py: rules, classifier, escalate). Three filters, in order: privacy (a private
request keeps only `local` targets), capability (a target that lacks what the request needs,
tools, image or audio input, JSON-schema output, is skipped; none left is the client's 400
naming the capability) and context window (a target whose window cannot hold the
prompt is dropped; one that holds the prompt but not the requested output keeps serving with
its output budget lowered to what fits). Skips are recorded, so the client's
`x-serving-fallback` header and the metrics say why a target was passed over. Circuit and
health skips happen later, at attempt time (dispatch.py), because they change from one moment
to the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from serving.gateway import canonical as c
from serving.gateway.errors import CapabilityMissing, ContextWindowExceeded, GatewayError
from serving.gateway.metrics import Metrics
from serving.gateway.policy.caller import Caller
from serving.gateway.policy.capabilities import DESCRIBED, CapabilityTable, load_table
from serving.gateway.policy.context import ContextPolicy
from serving.gateway.policy.facts import RequestFacts, build_facts
from serving.gateway.policy.fallback import Failure
from serving.gateway.policy.privacy import PrivacyPolicy, ScanDoubt
from serving.gateway.policy.router import Router
from serving.gateway.policy.tasks import needs_of
from serving.gateway.settings import Need, Route, Settings, Target
from serving.gateway.upstreams.base import RawCall, UpstreamClient

log = logging.getLogger("serving.gateway.policy.routing")


@dataclass(slots=True)
class Plan:
    targets: list[Target]
    skipped: list[Failure] = field(default_factory=list)
    private: str | None = None  # why the request is private ("header", "key", a detector)
    prompt_tokens: int = 0
    max_tokens: dict[str, int] = field(default_factory=dict)  # target label -> lowered budget


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
        self.capabilities = CapabilityTable(settings, load_table())
        self.router = Router(settings, upstreams, metrics, self.context)
        # Each route's targets with their context windows resolved (declared, else profile or
        # table). Per route: two routes may name the same upstream/model with other prices.
        self._windowed = {
            r.model: [
                t.model_copy(update={"context_window": self.capabilities.of(t).context_window})
                for t in r.targets
            ]
            for r in settings.routes
        }
        self._local = {u.name: u.locality == "local" for u in settings.upstreams}
        # Routes with no hosted target need no privacy scan: nothing could leak.
        self._mixed = {
            r.model: not all(self._local[t.upstream] for t in r.targets) for r in settings.routes
        }

    async def facts(self, call: RawCall) -> RequestFacts:
        """The request's facts, built once; large bodies off the event loop. Facts that
        cannot be built are a doubt: the request is then private."""
        try:
            if len(call.body) <= self._settings.privacy.inline_scan_bytes:
                return build_facts(call.parsed)
            return await asyncio.to_thread(build_facts, call.parsed)
        except Exception as exc:  # noqa: BLE001 - a malformed corner must not make it public
            log.warning("request facts could not be built (%s)", type(exc).__name__)
            return RequestFacts.doubtful("facts_error", len(call.body))

    def is_local(self, target: Target) -> bool:
        return self._local[target.upstream]

    async def plan(
        self,
        route: Route,
        facts: RequestFacts,
        caller: Caller | None,
        request: c.ChatRequest | None,
        *,
        fit: bool = True,
    ) -> Plan:
        """The chain this request may walk; `fit=False` leaves the context window out (token
        counting generates nothing)."""
        targets = list(self._windowed.get(route.model, route.targets))
        plan = Plan(targets, private=await self.private_reason(route, facts, caller))
        if plan.private is not None:
            self._metrics.private_requests.labels(route.model, plan.private).inc()
            kept = [t for t in plan.targets if self.is_local(t)]
            self._skip(route, plan, [t for t in plan.targets if not self.is_local(t)], "private")
            plan.targets = kept
        needs = needs_of(facts)
        if fit and needs and plan.targets:  # counting tokens needs no capability
            self._able(route, plan, needs)
        if fit and self._settings.context.enabled and plan.targets:
            await self._fit_context(route, facts, plan, request)
        return plan

    async def private_reason(
        self, route: Route, facts: RequestFacts, caller: Caller | None
    ) -> str | None:
        """Why a request is private ("header", "key", a detector name, "doubt"), or None."""
        marked = caller.private if caller is not None else None
        if marked is not None or not self._mixed[route.model] or not self.privacy.detectors:
            return marked
        if facts.problem is not None:
            return self._doubt(route, facts.problem)
        started = time.monotonic()
        try:
            if facts.text_bytes <= self._settings.privacy.inline_scan_bytes:
                found = self.privacy.scan(facts.text, started=started)
            else:  # seconds of work at worst: other requests keep being served meanwhile
                log.debug("scanning %d KB off the event loop", facts.text_bytes // 1024)
                found = await asyncio.to_thread(self.privacy.scan, facts.text, started=started)
        except ScanDoubt as doubt:
            return self._doubt(route, doubt.reason)
        finally:
            took = time.monotonic() - started
            self._metrics.privacy_scan_seconds.observe(took)
            if facts.text_bytes > self._settings.privacy.inline_scan_bytes:
                log.debug("scan of %d KB done in %.3f s", facts.text_bytes // 1024, took)
        if found is not None:
            log.debug("request to %s is private: detector %s matched", route.model, found)
        return found

    def _doubt(self, route: Route, reason: str) -> str:
        log.warning(
            "request to %s treated as private: the privacy scan could not complete (%s)",
            route.model,
            reason,
        )
        self._metrics.privacy_doubts.labels(route.model, reason).inc()
        return "doubt"

    def _able(self, route: Route, plan: Plan, needs: frozenset[Need]) -> None:
        """Skip targets that cannot serve what the request needs; none left is a 400."""
        missing = {t.label: self.capabilities.missing(t, needs) for t in plan.targets}
        unable = [t for t in plan.targets if missing[t.label]]
        if not unable:
            return
        self._skip(route, plan, unable, "capability")
        plan.targets = [t for t in plan.targets if not missing[t.label]]
        if plan.targets or plan.private is not None:
            return
        lacking = sorted({n for t in unable for n in missing[t.label]})
        what = " and ".join(DESCRIBED[n] for n in lacking)
        who = ", ".join(f"{t.label} lacks {'+'.join(missing[t.label])}" for t in unable)
        raise CapabilityMissing(
            f"model {route.model!r} cannot serve this request: it needs {what}, and no target"
            f" of the route has it ({who})",
            param=_PARAM[lacking[0]],
        )

    def _dialect(self, target: Target) -> str:
        return self._upstreams[target.upstream].dialect

    async def _fit_context(
        self,
        route: Route,
        facts: RequestFacts,
        plan: Plan,
        request: c.ChatRequest | None,
    ) -> None:
        ctx = self.context
        output = ctx.output(facts)
        text = ctx.text_tokens(facts)
        need = [(t, text + ctx.attachment_tokens(facts, self._dialect(t))) for t in plan.targets]
        tokenize = self._settings.context.tokenize_upstream and request is not None
        if tokenize and request is not None and ctx.borderline(need, output):
            exact = await self._exact(route, request)
            if exact is not None:
                need = [(t, exact) for t, _ in need]
        plan.prompt_tokens = max(prompt for _, prompt in need)
        m = self._metrics
        m.child(m.prompt_tokens_estimated, route.model).observe(plan.prompt_tokens)
        too_small: list[tuple[Target, int]] = []
        for target, prompt in need:
            room = ctx.room(target, prompt)
            if room is None or room >= output:
                continue
            if room < 1:
                too_small.append((target, prompt))
            else:  # the prompt fits: answer within what is left rather than skip the target
                log.debug("route %s: %s output lowered to %d", route.model, target.label, room)
                plan.max_tokens[target.label] = room
        if not too_small:
            return
        self._skip(route, plan, [t for t, _ in too_small], "context_window")
        dropped = {t.label for t, _ in too_small}
        plan.targets = [t for t in plan.targets if t.label not in dropped]
        if not plan.targets and plan.private is None:
            target, prompt = max(too_small, key=lambda tp: tp[0].context_window or 0)
            raise ContextWindowExceeded(
                f"the prompt (about {prompt} tokens) does not fit any target of"
                f" {route.model!r}: the largest context window is {target.context_window}"
                f" tokens ({target.label})",
                param="messages",
                code="context_length_exceeded",
            )

    async def _exact(self, route: Route, request: c.ChatRequest) -> int | None:
        """The tokenizer engine's count; None when it cannot answer."""
        name = self._settings.context.tokenize_upstream
        assert name is not None
        model = next((t.model for t in route.targets if t.upstream == name), None)
        if model is None:
            return None
        try:
            return await self._upstreams[name].count_tokens(request, model)
        except GatewayError as exc:
            log.warning("exact token count on %s failed (%s); using the estimate", name, exc)
            self._metrics.upstream_attempts.labels(f"{name}/{model}", "tokenize_failed").inc()
            return None

    def _skip(self, route: Route, plan: Plan, targets: list[Target], reason: str) -> None:
        for t in targets:
            log.debug("route %s: skipping %s (%s)", route.model, t.label, reason)
            self._metrics.skips.labels(route.model, t.label, reason).inc()
            plan.skipped.append(Failure(t.label, reason, None))


# The request field a missing capability points at (rendered as the error's `param`).
_PARAM: dict[Need, str] = {
    "tools": "tools",
    "vision": "messages",
    "audio": "messages",
    "json_schema": "response_format",
}
