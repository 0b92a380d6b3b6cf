"""Warnings `serving config check` prints about a config that is valid but probably not meant.

Each warning names the field and says what will happen at run time; none stops the gateway.
"""

from __future__ import annotations

from serving.gateway.policy.cost import load_price_table
from serving.gateway.settings import Settings, read_secret


def config_warnings(settings: Settings, *, check_env: bool = True) -> list[str]:
    out: list[str] = []
    local = {u.name for u in settings.upstreams if u.locality == "local"}
    private_possible = bool(
        any(k.private for k in settings.server.keys)
        or settings.privacy.header
        or (settings.privacy.detect and (settings.privacy.detectors or settings.privacy.custom))
    )
    for route in settings.routes:
        names = [t.upstream for t in route.targets]
        if not any(n in local for n in names):
            out.append(
                f"route {route.model!r}: no local target, so no self-hosted fallback"
                + (
                    "; private requests to it will be refused (PrivacyBlocked, 503)"
                    if private_possible
                    else ""
                )
            )
        out += _context_order(route.model, [t.context_window for t in route.targets])
    out += _prices(settings)
    out += _limits(settings)
    if check_env:
        out += _secrets(settings)
    return out


def _context_order(route: str, windows: list[int | None]) -> list[str]:
    known = [w for w in windows if w is not None]
    if known and len(known) < len(windows):
        return [
            f"route {route!r}: some targets have no context_window; they are assumed to fit"
            " any prompt (the upstream will refuse what does not)"
        ]
    return []


def _prices(settings: Settings) -> list[str]:
    table = {**load_price_table(), **settings.cost.prices}
    hosted = {u.name for u in settings.upstreams if u.locality == "hosted"}
    missing = sorted(
        {
            t.label
            for r in settings.routes
            for t in r.targets
            if t.upstream in hosted and t.price is None and t.model not in table
        }
    )
    return [
        f"target {label}: no price known (add it under cost.prices); its cost is not counted"
        for label in missing
    ]


def _limits(settings: Settings) -> list[str]:
    """Per-key limits count per process unless the replicas share Redis (docs/keys.md)."""
    limited = [
        k.name or f"keys[{i}]"
        for i, k in enumerate(settings.server.keys)
        if k.requests_per_minute or k.tokens_per_minute or k.monthly_budget_usd is not None
    ]
    if not limited or settings.state.redis_url or settings.state.redis_url_env:
        return []
    return [
        f"server.keys {', '.join(limited)}: limits are counted in this process only (no"
        " state.redis_url); with several replicas each one allows the full limit"
    ]


def _secrets(settings: Settings) -> list[str]:
    out: list[str] = []
    for u in settings.upstreams:
        if u.locality == "hosted" and not (u.api_key_env or u.api_key_file):
            out.append(f"upstream {u.name!r}: hosted but no api_key_env or api_key_file")
        elif (u.api_key_env or u.api_key_file) and u.api_key() is None:
            where = u.api_key_env or u.api_key_file
            out.append(f"upstream {u.name!r}: its key ({where}) is not set here")
    for k in settings.server.keys:
        if k.read() is None:
            out.append(f"server.keys {k.name or k.key_env or k.key_file}: not set here")
    if (
        settings.admin.enabled
        and read_secret(settings.admin.key_env, settings.admin.key_file) is None
    ):
        out.append("admin: enabled but its key is not set here; every admin call will be refused")
    return out
