"""Choosing a request's chain: a route's rules (rules.py) with its complexity classifier, or
its one-hop `escalate` rule, before privacy, capability and context narrow the chain.

Built once per app: each route's classifier (the trained weights are loaded once, the model
classifier holds its upstream client). Per request it derives the signals from the facts,
asks the classifier only when a reached rule needs the tier, and returns a `Decision`, which
the client sees in `x-serving-route` and metrics count by rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.gateway.metrics import Metrics
from serving.gateway.policy.classify import Score, features, trained
from serving.gateway.policy.classify.model import ModelClassifier
from serving.gateway.policy.context import ContextPolicy
from serving.gateway.policy.facts import RequestFacts
from serving.gateway.policy.hints import Hints
from serving.gateway.policy.rules import NEEDS_TIER, Signals, first_match
from serving.gateway.policy.tasks import needs_of, tasks_of
from serving.gateway.settings import Route, Rule, Settings
from serving.gateway.upstreams.base import UpstreamClient

log = logging.getLogger("serving.gateway.policy.router")


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route  # whose chain serves the request
    rule: str | None  # the rule that fired, "escalate", or None (the asked route's own chain)
    signals: Signals
    score: Score | None = None  # set when the classifier was asked (or the tier forced)
    fallback: str | None = None  # why the model classifier fell back to features


class Router:
    def __init__(
        self,
        settings: Settings,
        upstreams: Mapping[str, UpstreamClient],
        metrics: Metrics,
        context: ContextPolicy,
    ) -> None:
        self._metrics = metrics
        self._context = context
        self._routes = {r.model: r for r in settings.routes}
        self._long = settings.routing.long_document_tokens
        self._children: dict[tuple[Any, ...], Any] = {}
        self._trained: dict[str, trained.LinearModel] = {}
        self._model: dict[str, ModelClassifier] = {}
        for route in settings.routes:
            cls = route.classifier
            if not route.rules or not any(r.when.tier for r in route.rules):
                continue
            if cls.kind == "trained":
                self._trained[route.model] = trained.load(
                    Path(cls.weights) if cls.weights else None
                )
            elif cls.kind == "model":
                assert cls.upstream is not None
                self._model[route.model] = ModelClassifier(cls, upstreams[cls.upstream])

    def signals(self, facts: RequestFacts, hints: Hints, *, read: bool = True) -> Signals:
        """The request's routing signals; `read=False` skips the prompt's cue pass (no rule
        will read it), so the `coding` task is then not detected."""
        ctx = self._context
        prompt = ctx.text_tokens(facts) + ctx.attachment_tokens(facts, "")
        found = features.cues(facts.prompt or facts.text) if read else None
        coding = found is not None and found.coding
        tasks = tasks_of(facts, prompt, self._long, coding)
        return Signals(prompt, tasks, needs_of(facts), hints, hints.tier, found)

    async def decide(self, route: Route, facts: RequestFacts, hints: Hints) -> Decision:
        s = self.signals(facts, hints, read=bool(route.rules))
        if not route.rules:
            return self._escalate(route, s)
        score: Score | None = None
        fallback: str | None = None
        if hints.tier is not None:
            score = Score(hints.tier, 1.0 if hints.tier == "complex" else 0.0, "forced")
        match = first_match(route.rules, s)
        if match is NEEDS_TIER:
            score, fallback = await self.classify(route, facts, s)
            s.tier = score.tier
            match = first_match(route.rules, s)
        m = self._metrics
        if score is not None:
            self._count(m.classifier_decisions, route.model, score.by, score.tier)
        if fallback is not None:
            m.classifier_fallbacks.labels(route.model, fallback).inc()
        if not isinstance(match, Rule):
            self._count(m.route_decisions, route.model, "none", route.model)
            return Decision(route, None, s, score, fallback)
        self._count(m.route_decisions, route.model, match.name, match.to)
        log.debug("route %s: rule %s -> %s", route.model, match.name, match.to)
        return Decision(self._routes[match.to], match.name, s, score, fallback)

    def _count(self, counter: Any, *labels: str) -> None:
        """Increment a labelled counter; children are cached (a `labels()` lookup takes a
        lock and costs more than the rest of a decision)."""
        key = (id(counter), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc()

    async def classify(
        self, route: Route, facts: RequestFacts, s: Signals | None = None
    ) -> tuple[Score, str | None]:
        cls = route.classifier
        if cls.kind == "trained" and route.model in self._trained:
            return self._trained[route.model].classify(facts, cls.threshold), None
        if cls.kind == "model" and route.model in self._model:
            return await self._model[route.model].classify(facts)
        found = s.cues if s is not None else None
        return features.classify(facts, cls.threshold, found), None

    def _escalate(self, route: Route, s: Signals) -> Decision:
        rule = route.escalate
        if rule is None:
            return Decision(route, None, s)
        big = rule.min_prompt_tokens is not None and s.prompt_tokens >= rule.min_prompt_tokens
        if big or (rule.tools and "tools" in s.needs):
            log.debug("route %s: escalated to %s", route.model, rule.to)
            self._metrics.escalations.labels(route.model, rule.to).inc()
            return Decision(self._routes[rule.to], "escalate", s)
        return Decision(route, None, s)
