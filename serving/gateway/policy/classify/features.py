"""The `features` classifier: a fixed, documented weighted sum of cues in the last user turn.

    score = clip(sum(weight * feature), 0, 1); complex when score >= threshold (default 0.4)

| feature      | value in [0, 1]                                         | weight |
|--------------|---------------------------------------------------------|--------|
| length       | words / 30, at most 1                                   | 0.45   |
| code         | code cues (fences, `def f(`, language names) / 2        | 0.20   |
| math         | math cues (equations, "prove", "integral", ...) / 2     | 0.20   |
| multi_step   | step cues (numbered lines, "then", "step", ...) / 2     | 0.20   |
| reasoning    | reasoning cues ("why", "compare", "trade-off", ...) / 2 | 0.25   |
| constraints  | constraint cues ("must", "at least", "without", ...) / 2| 0.15   |
| depth        | (messages - 1) / 8, at most 1                           | 0.15   |
| lookup       | lookup cues ("what is", "define", "translate", ...) / 1 | -0.25  |

Deterministic, no model call, and bounded: cues are counted in one regex pass over the first
`SCAN_CHARS` characters (length counts the whole turn). Docs/routing.md reports its agreement
with the bundled labelled sample; scripts/bench_routing.py measures its cost.
"""

from __future__ import annotations

import re

from serving.gateway.policy.classify import Score, tier_of
from serving.gateway.policy.facts import RequestFacts

SCAN_CHARS = 2000
THRESHOLD = 0.4
WEIGHTS: dict[str, float] = {
    "length": 0.45,
    "code": 0.20,
    "math": 0.20,
    "multi_step": 0.20,
    "reasoning": 0.25,
    "constraints": 0.15,
    "depth": 0.15,
    "lookup": -0.25,
}
LENGTH_WORDS = 30
# Cue counts at which a feature is full (1.0).
SATURATION: dict[str, float] = {
    "code": 2,
    "math": 2,
    "multi_step": 2,
    "reasoning": 2,
    "constraints": 2,
    "lookup": 1,
}
_CUES = re.compile(
    r"(?P<code>```|\bdef \w+\(|\bclass \w+|\bfunction\b|#include|=>|\bimport \w+"
    r"|\b(?:python|javascript|typescript|rust|golang|java|sql|bash|regex|api|compiler"
    r"|algorithm|recursion|concurrency|thread|async|database|schema|kubernetes|docker)\b)"
    r"|(?P<math>\b(?:prove|proof|integral|derivative|theorem|equation|probability|matrix"
    r"|eigen\w*|lemma|optimi[sz]e|complexity|asymptotic)\b|\d\s*[-+*/^=]\s*\d|\\frac|\\sum)"
    r"|(?P<multi_step>(?m:^\s*(?:\d+[.)]|[-*])\s)|\b(?:step|steps|then|first|second|finally"
    r"|afterwards|next|phase|plan)\b)"
    r"|(?P<reasoning>\b(?:why|explain|analy[sz]e|compare|contrast|trade-?offs?|design"
    r"|architect\w*|evaluate|justify|derive|critique|implications?|strategy|pros and cons"
    r"|root cause|reason about|in depth|detailed)\b)"
    r"|(?P<constraints>\b(?:must|should|without|at least|at most|exactly|no more than"
    r"|ensure|only|constraints?|requirements?|edge cases?|handle)\b)"
    r"|(?P<lookup>\b(?:what is|what's|who is|who was|when did|when was|where is|define"
    r"|translate|spell|capital of|how many|synonym|convert)\b)",
    re.IGNORECASE,
)


def features(facts: RequestFacts) -> dict[str, float]:
    """Each feature's value in [0, 1] (the table in the module docstring)."""
    text = facts.prompt or facts.text
    counts = dict.fromkeys(SATURATION, 0)
    for match in _CUES.finditer(text, 0, SCAN_CHARS):
        group = match.lastgroup
        if group is not None:
            counts[group] += 1
    out = {k: min(1.0, n / SATURATION[k]) for k, n in counts.items()}
    out["length"] = min(1.0, text.count(" ") / LENGTH_WORDS)
    out["depth"] = min(1.0, max(0, facts.messages - 1) / 8)
    return out


def score(facts: RequestFacts) -> float:
    values = features(facts)
    total = sum(WEIGHTS[k] * v for k, v in values.items())
    return min(1.0, max(0.0, total))


def classify(facts: RequestFacts, threshold: float | None = None) -> Score:
    s = score(facts)
    return Score(tier_of(s, THRESHOLD if threshold is None else threshold), s, "features")
