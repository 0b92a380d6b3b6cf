"""Declarative routing rules: the first rule whose conditions hold names the chain.

Rules read `Signals`, derived from the request's facts (built once, see facts.py) and the
caller's hints; nothing here reads request bytes. Conditions are checked cheapest first, and
the complexity tier last: it is the only one that may cost a classifier call, so it is asked
for (`NEEDS_TIER`) only when a rule's other conditions already hold and the tier is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from serving.gateway.policy.classify.features import Cues
from serving.gateway.policy.hints import Hints
from serving.gateway.settings import Need, Rule, Task, Tier, When


@dataclass(slots=True)
class Signals:
    prompt_tokens: int
    tasks: frozenset[Task]
    needs: frozenset[Need]
    hints: Hints
    tier: Tier | None = None  # the caller's forced tier, or the classifier's once asked
    cues: Cues | None = None  # the prompt's cue counts, reused by the features classifier


class _NeedsTier:
    def __repr__(self) -> str:
        return "NEEDS_TIER"


NEEDS_TIER: Final = _NeedsTier()


def holds(when: When, s: Signals) -> bool | _NeedsTier:
    """Whether every set condition holds; NEEDS_TIER when only the unknown tier could say."""
    h = s.hints
    if when.cost_sensitive is not None and when.cost_sensitive != h.cost_sensitive:
        return False
    if when.quality is not None and h.quality not in when.quality:
        return False
    if when.min_prompt_tokens is not None and s.prompt_tokens < when.min_prompt_tokens:
        return False
    if when.max_prompt_tokens is not None and s.prompt_tokens > when.max_prompt_tokens:
        return False
    if when.needs is not None and not s.needs.issuperset(when.needs):
        return False
    if when.task is not None and s.tasks.isdisjoint(when.task):
        return False
    if when.tier is not None:
        if s.tier is None:
            return NEEDS_TIER
        return s.tier in when.tier
    return True


def first_match(rules: Sequence[Rule], s: Signals) -> Rule | _NeedsTier | None:
    """The first rule that holds, None when none does, or NEEDS_TIER: ask the classifier,
    set `s.tier`, and call again (earlier rules did not hold and still do not)."""
    for rule in rules:
        verdict = holds(rule.when, s)
        if verdict is True:
            return rule
        if verdict is NEEDS_TIER:
            return NEEDS_TIER
    return None
