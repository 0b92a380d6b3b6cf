"""Per-key limits: requests and tokens per minute, and a monthly budget in US dollars.

Before a request is dispatched, `KeyLimits.admit` checks the calling key's rules in one
atomic `take` (state/counters.py): the request-per-minute rule takes one slot, the
token-per-minute and budget rules are checks (a request's tokens and cost are known only once
it is answered). After the answer, `settle` adds its tokens (input + output) and its cost
(policy/cost.py's meter: list price for hosted targets, GPU time for local ones) to the key's
buckets. A request admitted while the key is just under its token or budget limit may carry it
over by that one answer: limits bound usage, they do not pre-pay it.

Windows slide: a minute's usage is `current minute + previous minute x the share of it still
inside the last 60 s`, which smooths the burst a fixed window allows at each minute boundary.
The budget is per calendar month, UTC. Denials are `RateLimited` (429 in every dialect, the
dialect's own error type) with `retry-after`: when the window has room again, or the start of
next month for a spent budget (OpenAI's `insufficient_quota` code).

A store that cannot answer (Redis down or slow past `state.counters.timeout`) is logged,
counted (`serving_key_limit_errors_total`) and then, by `state.counters.on_error`: `allow`
(the default: the gateway is the fallback path for apps whose primary is down, so a counter
outage must not become an outage; usage during it goes uncounted) or `deny` (fail closed:
every limited key's requests get a 503 with `retry-after` until the store is back).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable

from serving.gateway.errors import GatewayError, RateLimited
from serving.gateway.metrics import Metrics
from serving.gateway.policy.keys import KeyPolicy
from serving.gateway.redaction import redact
from serving.gateway.state.counters import Counters, CountersUnavailable, Rule, Verdict

log = logging.getLogger("serving.gateway.policy.limits")

WINDOW = 60.0  # seconds: the "minute" of requests and tokens per minute
_BUDGET_TTL = 40 * 24 * 3600.0  # a month's spend outlives its month
_WARN_EVERY = 30.0  # seconds between two warnings about the store being down


class StoreUnavailable(GatewayError):
    """The limits store is down and `on_error: deny` fails closed (503)."""

    status = 503
    retryable = True


class KeyLimits:
    def __init__(
        self,
        counters: Counters,
        metrics: Metrics,
        *,
        prefix: str = "serving:",
        on_error: str = "allow",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counters = counters
        self._metrics = metrics
        self._prefix = prefix
        self._deny_on_error = on_error == "deny"
        self._clock = clock
        self._warned = -math.inf

    def _bucket(self, key: KeyPolicy, kind: str, period: str) -> str:
        # `{id}` is a Redis hash tag: one key's buckets share a cluster slot (one script).
        return f"{self._prefix}limits:{{{key.id}}}:{kind}:{period}"

    def _window(self, key: KeyPolicy, kind: str, now: float) -> tuple[str, str, float]:
        n = int(now // WINDOW)
        weight = 1.0 - (now - n * WINDOW) / WINDOW
        return self._bucket(key, kind, str(n)), self._bucket(key, kind, str(n - 1)), weight

    def rules(self, key: KeyPolicy, now: float) -> list[tuple[str, Rule]]:
        """The key's rules now, each with its name (the metric's `reason`)."""
        out: list[tuple[str, Rule]] = []
        if key.tokens_per_minute is not None:
            cur, prev, w = self._window(key, "tpm", now)
            out.append(("tokens", Rule(cur, prev, w, 0, key.tokens_per_minute, 2 * WINDOW)))
        if key.monthly_budget_usd is not None:
            bucket = self._bucket(key, "usd", _month(now))
            out.append(("budget", Rule(bucket, None, 0.0, 0, key.monthly_budget_usd, _BUDGET_TTL)))
        if key.requests_per_minute is not None:
            cur, prev, w = self._window(key, "rpm", now)
            out.append(("requests", Rule(cur, prev, w, 1, key.requests_per_minute, 2 * WINDOW)))
        return out

    async def admit(self, key: KeyPolicy | None) -> None:
        """Raise `RateLimited` when the key is over one of its limits; take a request slot."""
        if key is None or not key.limited:
            return
        now = self._clock()
        named = self.rules(key, now)
        try:
            verdict = await self.counters.take([rule for _, rule in named])
        except CountersUnavailable as exc:
            self._store_failed("admit", exc)
            if self._deny_on_error:
                raise StoreUnavailable(
                    "the gateway cannot check this key's limits right now", retry_after=5
                ) from exc
            return
        if verdict.denied is not None:
            reason, rule = named[verdict.denied]
            self._metrics.key_limited.labels(key.id, reason).inc()
            raise _denial(key, reason, rule, verdict, verdict.denied, now)

    async def settle(self, key: KeyPolicy | None, tokens: int, cost: float | None) -> None:
        """Count an answered request's tokens and cost against the key; never raises."""
        if key is None or (key.tokens_per_minute is None and key.monthly_budget_usd is None):
            return
        now = self._clock()
        items: list[tuple[str, float, float]] = []
        if key.tokens_per_minute is not None and tokens > 0:
            items.append((self._window(key, "tpm", now)[0], float(tokens), 2 * WINDOW))
        if key.monthly_budget_usd is not None and cost:
            items.append((self._bucket(key, "usd", _month(now)), cost, _BUDGET_TTL))
        try:
            await self.counters.add(items)
        except CountersUnavailable as exc:
            self._store_failed("settle", exc)

    def _store_failed(self, operation: str, exc: CountersUnavailable) -> None:
        self._metrics.key_limit_errors.labels(operation).inc()
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            policy = "denying limited keys" if self._deny_on_error else "allowing requests"
            log.warning("key limits store unavailable (%s); %s", redact(str(exc)), policy)

    async def aclose(self) -> None:
        await self.counters.aclose()


def _denial(
    key: KeyPolicy, reason: str, rule: Rule, verdict: Verdict, i: int, now: float
) -> GatewayError:
    if reason == "budget":
        spent = verdict.current[i]
        return RateLimited(
            f"this API key has used its monthly budget (${spent:.2f} of"
            f" ${rule.limit:.2f}); it renews at the start of next month (UTC)",
            retry_after=float(math.ceil(_next_month(now) - now)),
            code="insufficient_quota",
        )
    wait = _window_wait(rule, verdict.current[i], verdict.previous[i], now)
    unit = "requests" if reason == "requests" else "tokens"
    return RateLimited(
        f"this API key is over its limit of {rule.limit:g} {unit} per minute; retry in {wait:g} s",
        retry_after=wait,
    )


def _window_wait(rule: Rule, cur: float, prev: float, now: float) -> float:
    """Seconds until a sliding window has room for `rule.amount` again (whole seconds, 1+)."""
    elapsed = now % WINDOW
    room = rule.limit - rule.amount if rule.amount > 0 else rule.limit * (1 - 1e-9)
    if cur > room:  # the current minute alone is too full: it must slide out
        wait = (WINDOW - elapsed) + WINDOW * max(0.0, 1 - room / cur)
    elif prev > 0:  # the previous minute's share must shrink to what is left
        wait = WINDOW * (1 - (room - cur) / prev) - elapsed
    else:
        wait = 1.0
    return float(min(2 * WINDOW, max(1, math.ceil(wait))))


def _month(now: float) -> str:
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    return f"{d.year:04d}-{d.month:02d}"


def _next_month(now: float) -> float:
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()
