"""Counters behind per-key rate limits and budgets: in this process, or in Redis when several
gateway replicas must share one limit.

Two operations, both atomic:

- `take(rules)`: check every rule and, only when all of them pass, add each rule's amount to
  its current bucket: one all-or-nothing step, so two replicas cannot both take the last slot.
  A rule reads a sliding window as `current + previous x weight` (the weight is the share of
  the previous window still inside the sliding one, computed by the caller from the clock);
  a rule with `amount > 0` passes when `used + amount <= limit`, one with `amount == 0` (a
  check only, e.g. tokens whose count is known later) when `used < limit`.
- `add(items)`: add amounts to buckets (tokens and spend once an answer is known).

Buckets expire by themselves (`ttl`), so neither store grows without bound. Redis runs `take`
as one Lua script (the server executes it without interleaving) and `add` as one pipeline of
`INCRBYFLOAT` + `PEXPIRE`; both are a single round trip. A store that cannot answer raises
`CountersUnavailable`; what that means for the request (allow or deny) is the caller's
decision (policy/limits.py, `state.counters.on_error`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Clock = Callable[[], float]


class CountersUnavailable(Exception):
    """The shared store did not answer (connection, timeout, an error reply)."""


@dataclass(frozen=True, slots=True)
class Rule:
    current: str  # bucket the amount is added to
    previous: str | None  # the previous window's bucket (None: a fixed bucket, no window)
    weight: float  # share of `previous` still inside the sliding window, 0..1
    amount: float
    limit: float
    ttl: float  # seconds the current bucket lives after its last write


@dataclass(frozen=True, slots=True)
class Verdict:
    denied: int | None  # index of the first rule that refused; None when all passed
    current: tuple[float, ...]  # each rule's current bucket before this take
    previous: tuple[float, ...]

    def used(self, i: int, rule: Rule) -> float:
        return self.current[i] + self.previous[i] * rule.weight


def passes(used: float, amount: float, limit: float) -> bool:
    return used + amount <= limit if amount > 0 else used < limit


class Counters(Protocol):
    async def take(self, rules: Sequence[Rule]) -> Verdict: ...

    async def add(self, items: Sequence[tuple[str, float, float]]) -> None:
        """(bucket, amount, ttl seconds) each."""
        ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    """One process's counters: a dict of (value, expiry). The event loop runs one coroutine
    at a time and nothing here awaits, so each operation is atomic as it stands."""

    _SWEEP_EVERY = 1024  # operations between two sweeps of expired buckets

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._ops = 0

    def _get(self, name: str, now: float) -> float:
        found = self._buckets.get(name)
        if found is None or found[1] <= now:
            return 0.0
        return found[0]

    def _add(self, name: str, amount: float, ttl: float, now: float) -> None:
        self._buckets[name] = (self._get(name, now) + amount, now + ttl)

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._SWEEP_EVERY == 0:
            for name in [n for n, (_, exp) in self._buckets.items() if exp <= now]:
                del self._buckets[name]

    async def take(self, rules: Sequence[Rule]) -> Verdict:
        now = self._clock()
        self._tick(now)
        current = tuple(self._get(r.current, now) for r in rules)
        previous = tuple(self._get(r.previous, now) if r.previous else 0.0 for r in rules)
        denied = next(
            (
                i
                for i, r in enumerate(rules)
                if not passes(current[i] + previous[i] * r.weight, r.amount, r.limit)
            ),
            None,
        )
        if denied is None:
            for rule in rules:
                if rule.amount > 0:
                    self._add(rule.current, rule.amount, rule.ttl, now)
        return Verdict(denied, current, previous)

    async def add(self, items: Sequence[tuple[str, float, float]]) -> None:
        now = self._clock()
        self._tick(now)
        for name, amount, ttl in items:
            if amount > 0:
                self._add(name, amount, ttl, now)

    async def aclose(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


# KEYS: per rule its current and previous bucket. ARGV[1]: rule count, then per rule weight,
# amount, limit, ttl in ms. Returns {denied rule (1-based, 0: none), cur1, prev1, cur2, ...},
# the numbers as strings (a Lua number reply would be truncated to an integer).
_TAKE = """
local n = tonumber(ARGV[1])
local out = {0}
local denied = 0
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local w = tonumber(ARGV[4 * i - 2])
  local amount = tonumber(ARGV[4 * i - 1])
  local limit = tonumber(ARGV[4 * i])
  local used = cur + prev * w
  out[2 * i] = tostring(cur)
  out[2 * i + 1] = tostring(prev)
  if denied == 0 then
    if (amount > 0 and used + amount > limit) or (amount <= 0 and used >= limit) then
      denied = i
    end
  end
end
if denied == 0 then
  for i = 1, n do
    local amount = tonumber(ARGV[4 * i - 1])
    if amount > 0 then
      redis.call('INCRBYFLOAT', KEYS[2 * i - 1], ARGV[4 * i - 1])
      redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[4 * i + 1])
    end
  end
end
out[1] = denied
return out
"""


class RedisCounters:
    """Counters in Redis, shared by every replica that points at the same server.

    Bucket names carry a `{hash tag}` (the caller's choice, e.g. the key id), so one rule
    set's buckets land in one slot and the script also runs on Redis Cluster."""

    MAX_CONNECTIONS = 64  # per replica; a request waits up to `timeout` for a free one

    def __init__(self, url: str, *, timeout: float) -> None:
        import redis.asyncio as redis

        # A blocking pool: under a burst, requests queue briefly for a connection instead of
        # opening one each (Redis serves these scripts in microseconds; connections are dear).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=self.MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
        self._redis: Any = redis.Redis.from_pool(pool)
        self._take = self._redis.register_script(_TAKE)

    async def take(self, rules: Sequence[Rule]) -> Verdict:
        keys: list[str] = []
        args: list[str | float] = [len(rules)]
        for r in rules:
            keys += [r.current, r.previous or r.current]
            weight = r.weight if r.previous else 0.0
            args += [repr(weight), repr(float(r.amount)), repr(float(r.limit)), _ms(r.ttl)]
        reply = await self._call(self._take(keys=keys, args=args))
        denied = int(reply[0])
        values = [float(v) for v in reply[1:]]
        return Verdict(denied - 1 if denied else None, tuple(values[0::2]), tuple(values[1::2]))

    async def add(self, items: Sequence[tuple[str, float, float]]) -> None:
        items = [i for i in items if i[1] > 0]
        if not items:
            return
        pipe = self._redis.pipeline(transaction=False)
        for name, amount, ttl in items:
            pipe.incrbyfloat(name, amount)
            pipe.pexpire(name, _ms(ttl))
        await self._call(pipe.execute())

    async def _call(self, pending: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await pending
        except (RedisError, OSError, TimeoutError) as exc:
            raise CountersUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
