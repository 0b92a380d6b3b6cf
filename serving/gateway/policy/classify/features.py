"""The `features` classifier: a fixed, documented weighted sum of cues in the last user turn.

    score = clip(sum(weight * feature), 0, 1); complex when score >= threshold (default 0.4)

| feature      | value in [0, 1]                                          | weight |
|--------------|----------------------------------------------------------|--------|
| length       | words / 30, at most 1                                    | 0.45   |
| code         | code cues (fences, `def`, `=>`, language names) / 2      | 0.20   |
| math         | math cues (`2 + 3`, "prove", "integral", ...) / 2        | 0.20   |
| multi_step   | step cues (numbered lines, "then", "step", ...) / 2      | 0.20   |
| reasoning    | reasoning cues ("why", "compare", "trade-off", ...) / 2  | 0.25   |
| constraints  | constraint cues ("must", "at least", "without", ...) / 2 | 0.15   |
| depth        | (messages - 1) / 8, at most 1                            | 0.15   |
| lookup       | lookup cues ("what is", "define", "translate", ...) / 1  | -0.25  |

Deterministic, no model call, and bounded: only the first `SCAN_CHARS` characters are read
(a longer turn has saturated `length` anyway). Cues are counted from one word split (a dict
lookup per word), a few substring counts for phrases and symbols, and two small regexes;
task detection (policy/tasks.py) reuses the same counts, so a request is read once.
Docs/routing.md reports the agreement with the bundled labelled sample;
scripts/bench_routing.py measures the cost.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from serving.gateway.policy.classify import Score, tier_of
from serving.gateway.policy.facts import RequestFacts

SCAN_CHARS = 1500
THRESHOLD = 0.4
LENGTH_WORDS = 30
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
# Cue counts at which a feature is full (1.0).
SATURATION: dict[str, int] = {
    "code": 2,
    "math": 2,
    "multi_step": 2,
    "reasoning": 2,
    "constraints": 2,
    "lookup": 1,
}
_GROUPS: dict[str, str] = {
    "code": "python javascript typescript rust golang java sql bash regex api compiler"
    " algorithm recursion concurrency thread threads async await database schema kubernetes"
    " docker def class function import const struct lambda json yaml html css git debug"
    " debugging refactor traceback segfault pytest dockerfile",
    "math": "prove proof integral derivative theorem equation equations probability matrix"
    " eigenvalues eigenvectors lemma optimise optimize complexity asymptotic induction",
    "multi_step": "step steps then first second finally afterwards next phase plan",
    "reasoning": "why explain analyse analyze compare contrast trade tradeoff tradeoffs"
    " design architecture evaluate justify derive critique implication implications strategy"
    " detailed",
    "constraints": "must should without exactly ensure only constraint constraints"
    " requirement requirements handle",
    "lookup": "define translate spell synonym antonym convert",
}
CUE_WORDS: dict[str, str] = {w: g for g, words in _GROUPS.items() for w in words.split()}
# Phrases and symbols, counted as substrings of the lower-cased head.
PHRASES: tuple[tuple[str, str], ...] = (
    ("```", "code"),
    ("=>", "code"),
    ("#include", "code"),
    ("\\frac", "math"),
    ("at least", "constraints"),
    ("at most", "constraints"),
    ("no more than", "constraints"),
    ("edge case", "constraints"),
    ("pros and cons", "reasoning"),
    ("root cause", "reasoning"),
    ("step by step", "reasoning"),
    ("what is", "lookup"),
    ("what's", "lookup"),
    ("who is", "lookup"),
    ("who was", "lookup"),
    ("capital of", "lookup"),
    ("how many", "lookup"),
)
# Any one of these words makes a prompt a `coding` task (not a score cue by itself).
_CODING = (
    "python javascript typescript rust golang java c++ c# sql bash regex pytest numpy"
    " pandas react git github kubernetes docker dockerfile json yaml html css http tls"
    " api apis linux vim boolean integer algorithm algorithms recursion compiler debug"
    " debugging refactor function functions script scripts code codebase endpoint hashing"
    " database databases schema cache caching deploy"
)
CODING_WORDS = frozenset(_CODING.split())
_WORD = re.compile(r"[a-z0-9_+#']+")
_ARITHMETIC = re.compile(r"\d\s?[-+*/^=]\s?\d")
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*])\s")


@dataclass(frozen=True, slots=True)
class Cues:
    counts: dict[str, int]
    words: int  # in the head: enough to saturate `length`
    coding: bool  # a code symbol or a coding word (CODING_WORDS): the `coding` task


def cues(text: str) -> Cues:
    head = text[:SCAN_CHARS].lower()
    counts = dict.fromkeys(SATURATION, 0)
    words = _WORD.findall(head)
    # Distinct words only (Counter counts in C): prompts repeat their words a lot.
    seen = Counter(words)
    for w in CUE_WORDS.keys() & seen.keys():
        counts[CUE_WORDS[w]] += seen[w]
    languages = not CODING_WORDS.isdisjoint(seen)
    symbols = 0
    for phrase, group in PHRASES:
        n = head.count(phrase)
        if n:
            counts[group] += n
            if group == "code":
                symbols += n
    counts["math"] += len(_ARITHMETIC.findall(head))
    if "\n" in head:
        counts["multi_step"] += len(_LIST_ITEM.findall(head))
    coding = languages or symbols > 0
    return Cues(counts, len(words), coding)


def features(facts: RequestFacts, found: Cues | None = None) -> dict[str, float]:
    """Each feature's value in [0, 1] (the table in the module docstring)."""
    c = found or cues(facts.prompt or facts.text)
    out = {k: min(1.0, n / SATURATION[k]) for k, n in c.counts.items()}
    out["length"] = min(1.0, c.words / LENGTH_WORDS)
    out["depth"] = min(1.0, max(0, facts.messages - 1) / 8)
    return out


def score(facts: RequestFacts, found: Cues | None = None) -> float:
    values = features(facts, found)
    total = sum(WEIGHTS[k] * v for k, v in values.items())
    return min(1.0, max(0.0, total))


def classify(
    facts: RequestFacts, threshold: float | None = None, found: Cues | None = None
) -> Score:
    s = score(facts, found)
    return Score(tier_of(s, THRESHOLD if threshold is None else threshold), s, "features")
