"""Caller hints for rule-based routing: the quality asked for, cost sensitivity and a forced
complexity tier, from request headers first and the key's `route_hints` second.

Read once per request by the endpoint runner (deps.authenticate) into `Caller.hints`. A header
with a value outside its vocabulary is the client's 400 naming the header and its values: a
typo must not silently route to the default chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast, get_args

from serving.gateway.errors import InvalidRequest
from serving.gateway.settings import Quality, RouteHints, Routing, Tier

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Worked out once, not per request: with a default `RouteHints()` model built each time, they
# made `read_hints` 10.7 µs instead of 3.7 (timeit, docs/benchmarks.md round 5).
_QUALITIES: tuple[str, ...] = get_args(Quality)
_TIERS: tuple[str, ...] = get_args(Tier)
_FLAGS = tuple(sorted(_TRUE | _FALSE))
_NO_DEFAULTS = RouteHints()  # frozen


@dataclass(frozen=True, slots=True)
class Hints:
    quality: Quality | None = None
    cost_sensitive: bool = False
    tier: Tier | None = None  # forced by the caller: the classifier is not asked


NO_HINTS = Hints()


def _choice(headers: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in allowed:
        raise InvalidRequest(
            f"header {name}: {raw!r} is not one of {', '.join(allowed)}", param=name
        )
    return value


def read_hints(
    headers: Mapping[str, str], config: Routing, key_defaults: RouteHints | None
) -> Hints:
    defaults = key_defaults or _NO_DEFAULTS
    quality = _choice(headers, config.quality_header, _QUALITIES) or defaults.quality
    tier = _choice(headers, config.tier_header, _TIERS)
    flag = _choice(headers, config.cost_sensitive_header, _FLAGS)
    cost = flag in _TRUE if flag is not None else bool(defaults.cost_sensitive)
    if quality is None and tier is None and not cost:
        return NO_HINTS
    return Hints(cast(Quality | None, quality), cost, cast(Tier | None, tier))
