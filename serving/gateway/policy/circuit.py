"""A circuit breaker per target, so a failing target costs no attempt and no latency.

    closed ──failure rate ≥ threshold over the window (≥ min_requests)──▶ open
    closed ──`consecutive_failures` in a row──▶ open
    open ──cooldown elapsed──▶ half-open (up to `half_open_probes` requests let through)
    half-open ──every probe succeeds──▶ closed      half-open ──a probe fails──▶ open

The rolling window is a ring of ten buckets, so memory and work per request are constant at any
request rate. The clock is injected: tests drive time by hand instead of sleeping. An admin can
force a circuit open (drills); it then stays open until closed by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from enum import IntEnum

from serving.gateway.metrics import Metrics
from serving.gateway.settings import Circuit as CircuitConfig

log = logging.getLogger("serving.gateway.policy.circuit")

Clock = Callable[[], float]
_BUCKETS = 10


class State(IntEnum):
    """The values exported as `serving_circuit_state`."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Window:
    """Request and failure counts over the last `span` seconds, in fixed buckets."""

    __slots__ = ("_failures", "_slot", "_stamps", "_totals")

    def __init__(self, span: float) -> None:
        self._slot = span / _BUCKETS
        self._stamps = [-1] * _BUCKETS  # which slot number each bucket currently holds
        self._totals = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS

    def add(self, now: float, failed: bool) -> None:
        n = int(now / self._slot)
        i = n % _BUCKETS
        if self._stamps[i] != n:
            self._stamps[i], self._totals[i], self._failures[i] = n, 0, 0
        self._totals[i] += 1
        self._failures[i] += failed

    def counts(self, now: float) -> tuple[int, int]:
        """(requests, failures) in buckets younger than the window."""
        oldest = int(now / self._slot) - _BUCKETS + 1
        total = failures = 0
        for i in range(_BUCKETS):
            if self._stamps[i] >= oldest:
                total += self._totals[i]
                failures += self._failures[i]
        return total, failures

    def clear(self) -> None:
        self._stamps = [-1] * _BUCKETS


class Breaker:
    """One target's breaker. Not thread-safe by design: the gateway runs on one event loop."""

    def __init__(self, name: str, config: CircuitConfig, metrics: Metrics, clock: Clock) -> None:
        self.name = name
        self.config = config
        self._metrics = metrics
        self._clock = clock
        self._window = Window(config.window)
        self.state = State.CLOSED
        self.forced = False
        self._opened_at = 0.0
        self._probes = 0  # probes let through while half-open and not yet answered
        self._streak = 0  # failures in a row while closed
        self._gauge = metrics.circuit_state.labels(name)
        self._gauge.set(State.CLOSED)

    def allow(self) -> bool:
        """Whether a request may be sent now; a half-open circuit admits a few probes."""
        if not self.config.enabled and not self.forced:
            return True
        if self.state is State.OPEN:
            if self.forced or self._clock() - self._opened_at < self.config.cooldown:
                return False
            self._move(State.HALF_OPEN, "cooldown elapsed")
        if self.state is State.HALF_OPEN:
            if self._probes >= self.config.half_open_probes:
                return False
            self._probes += 1
        return True

    def record(self, failed: bool) -> None:
        """The outcome of a request that `allow()` admitted."""
        if self.forced or not self.config.enabled:
            return
        now = self._clock()
        if self.state is State.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if failed:
                self._open(now, "a half-open probe failed")
            elif self._probes == 0:
                self._window.clear()
                self._move(State.CLOSED, "half-open probes succeeded")
            return
        if self.state is State.OPEN:
            return  # an answer from before the circuit opened
        self._window.add(now, failed)
        if not failed:
            self._streak = 0
            return
        self._streak += 1
        limit = self.config.consecutive_failures
        if limit and self._streak >= limit:
            self._open(now, f"{self._streak} failures in a row")
            return
        total, failures = self._window.counts(now)
        if total >= self.config.min_requests and failures / total >= self.config.failure_rate:
            self._open(now, f"{failures}/{total} failed in {self.config.window:g}s")

    def release(self) -> None:
        """A half-open probe ended without a verdict (a client error): free its slot."""
        if self.state is State.HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    def force_open(self) -> None:
        self.forced = True
        self._open(self._clock(), "forced open by an admin")

    def close(self) -> None:
        self.forced = False
        self._window.clear()
        self._probes = 0
        self._move(State.CLOSED, "closed by an admin")

    def _open(self, now: float, why: str) -> None:
        self._opened_at = now
        self._probes = 0
        self._streak = 0
        self._move(State.OPEN, why)

    def _move(self, to: State, why: str) -> None:
        if to is self.state and to is not State.OPEN:
            return
        log.debug("circuit %s: %s -> %s (%s)", self.name, self.state.name, to.name, why)
        self._metrics.circuit_transitions.labels(self.name, to.name.lower()).inc()
        self.state = to
        self._gauge.set(to)


class Circuits:
    """Every target's breaker, keyed by target label (`upstream/model`)."""

    def __init__(
        self,
        targets: Iterable[tuple[str, CircuitConfig]],
        metrics: Metrics,
        clock: Clock = time.monotonic,
    ) -> None:
        self._breakers = {name: Breaker(name, cfg, metrics, clock) for name, cfg in targets}

    def __getitem__(self, name: str) -> Breaker:
        return self._breakers[name]

    def get(self, name: str) -> Breaker | None:
        return self._breakers.get(name)

    def states(self) -> dict[str, str]:
        return {
            name: b.state.name.lower() + (" (forced)" if b.forced else "")
            for name, b in self._breakers.items()
        }
