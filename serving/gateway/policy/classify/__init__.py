"""Complexity classifiers: how hard a request looks, as a score in [0, 1] and a tier.

Three kinds, chosen per route (`classifier.kind`): `features` (built in, no model call),
`trained` (a hashed n-gram linear model, numpy) and `model` (a local engine picks a label
under structured output, falling back to `features`). Each reads the request's facts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.gateway.settings import Tier


@dataclass(frozen=True, slots=True)
class Score:
    tier: Tier
    score: float  # 0 simple .. 1 complex (the model classifier answers 0 or 1)
    by: str  # the classifier that decided: features | trained | model | forced | fallback


def tier_of(score: float, threshold: float) -> Tier:
    return "complex" if score >= threshold else "simple"
