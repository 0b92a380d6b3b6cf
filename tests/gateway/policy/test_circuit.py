"""The circuit breaker, driven by an injected clock (no sleeps)."""

from __future__ import annotations

from serving.gateway.metrics import Metrics
from serving.gateway.policy.circuit import Breaker, Circuits, State, Window
from serving.gateway.settings import Circuit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def current(b: Breaker) -> State:
    """`b.state` read afresh: mypy would keep an earlier narrowing across `record`/`allow`."""
    return b.state


def breaker(clock: Clock, **kw: object) -> tuple[Breaker, Metrics]:
    config = Circuit.model_validate(
        {"window": 10, "min_requests": 4, "failure_rate": 0.5, "cooldown": 5, **kw}
    )
    metrics = Metrics()
    return Breaker("up/m", config, metrics, clock), metrics


def gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("serving_circuit_state", {"target": "up/m"})


def test_stays_closed_below_the_minimum_request_count() -> None:
    clock = Clock()
    b, metrics = breaker(clock)
    for _ in range(3):
        assert b.allow()
        b.record(failed=True)
    assert b.state is State.CLOSED and gauge(metrics) == 0


def test_opens_on_failure_rate_and_skips_without_attempts() -> None:
    clock = Clock()
    b, metrics = breaker(clock)
    for failed in (False, True, False, True):  # 2/4 = 50 % >= 50 %
        assert b.allow()
        b.record(failed=failed)
    assert b.state is State.OPEN and gauge(metrics) == 2
    assert not b.allow()
    clock.now += 4.9
    assert not b.allow()  # still cooling down


def test_below_the_rate_stays_closed() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for failed in (False, False, False, True):  # 25 %
        b.record(failed=failed)
    assert b.state is State.CLOSED


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for _ in range(3):
        b.record(failed=True)
    clock.now += 11  # the window is 10 s
    b.record(failed=True)
    b.record(failed=False)
    b.record(failed=False)
    assert b.state is State.CLOSED  # 1 failure in 3 within the window


def test_half_open_after_cooldown_admits_one_probe_then_closes_on_success() -> None:
    clock = Clock()
    b, metrics = breaker(clock)
    for _ in range(4):
        b.record(failed=True)
    clock.now += 5
    assert b.allow()  # the probe
    assert b.state is State.HALF_OPEN and gauge(metrics) == 1
    assert not b.allow()  # only one probe at a time
    b.record(failed=False)
    assert current(b) is State.CLOSED and gauge(metrics) == 0
    assert b.allow()


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for _ in range(4):
        b.record(failed=True)
    clock.now += 5
    assert b.allow()
    b.record(failed=True)
    assert b.state is State.OPEN
    clock.now += 4
    assert not b.allow()
    clock.now += 1
    assert b.allow() and current(b) is State.HALF_OPEN


def test_a_released_probe_frees_its_slot() -> None:
    clock = Clock()
    b, _ = breaker(clock)
    for _ in range(4):
        b.record(failed=True)
    clock.now += 5
    assert b.allow()
    b.release()  # e.g. the client went away, or a client error said nothing about health
    assert b.allow()


def test_forced_open_stays_open_until_closed() -> None:
    clock = Clock()
    b, metrics = breaker(clock)
    b.force_open()
    clock.now += 1000
    assert not b.allow() and b.state is State.OPEN
    b.record(failed=False)  # answers in flight do not close a forced circuit
    assert b.state is State.OPEN
    b.close()
    assert b.allow() and gauge(metrics) == 0
    opened = metrics.registry.get_sample_value(
        "serving_circuit_transitions_total", {"target": "up/m", "state": "open"}
    )
    assert opened == 1


def test_disabled_breaker_never_opens_unless_forced() -> None:
    clock = Clock()
    b, _ = breaker(clock, enabled=False)
    for _ in range(20):
        b.record(failed=True)
    assert b.allow()
    b.force_open()
    assert not b.allow()


def test_window_counts_by_bucket() -> None:
    w = Window(10)
    w.add(0.5, True)
    w.add(5.5, False)
    assert w.counts(6.0) == (2, 1)
    assert w.counts(10.9) == (1, 0)  # the first bucket aged out
    assert w.counts(100.0) == (0, 0)


def test_circuits_report_states() -> None:
    clock = Clock()
    config = Circuit()
    circuits = Circuits([("a/x", config), ("b/y", config)], Metrics(), clock)
    circuits["a/x"].force_open()
    assert circuits.states() == {"a/x": "open (forced)", "b/y": "closed"}
    assert circuits.get("nope") is None


def test_failures_in_a_row_open_it_even_when_the_window_holds_successes() -> None:
    """A target that just died: 3 failures against 20 earlier successes are 13 %, far below the
    rate, but three in a row are enough."""
    clock = Clock()
    b, _ = breaker(clock, consecutive_failures=3)
    for _ in range(20):
        b.record(failed=False)
    for _ in range(2):
        b.record(failed=True)
    assert current(b) is State.CLOSED
    b.record(failed=False)  # a success breaks the streak
    for _ in range(2):
        b.record(failed=True)
    assert current(b) is State.CLOSED
    b.record(failed=True)
    assert current(b) is State.OPEN


def test_the_streak_rule_can_be_turned_off() -> None:
    clock = Clock()
    b, _ = breaker(clock, consecutive_failures=0)
    for _ in range(20):
        b.record(failed=False)
    for _ in range(8):
        b.record(failed=True)
    assert current(b) is State.CLOSED  # 8/28 < 50 %
