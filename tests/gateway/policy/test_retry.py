"""Retry and backoff decisions, with injected randomness (no sleeps)."""

from __future__ import annotations

import pytest

from serving.gateway.policy.retry import RetryPolicy
from serving.gateway.settings import Retry


async def _no_sleep(_: float) -> None:
    raise AssertionError("the policy itself never sleeps")


def policy(rand: float = 0.0, **kw: object) -> RetryPolicy:
    config = Retry.model_validate(
        {"attempts": 3, "backoff_base": 0.5, "backoff_max": 1.5, "jitter": 0.5, **kw}
    )
    return RetryPolicy(config, sleep=_no_sleep, rand=lambda: rand)


def test_backoff_doubles_up_to_the_cap() -> None:
    p = policy()
    assert [p.backoff(n) for n in range(4)] == [0.5, 1.0, 1.5, 1.5]


def test_jitter_shortens_the_wait_by_up_to_its_share() -> None:
    assert policy(rand=1.0).backoff(0) == pytest.approx(0.25)
    assert policy(rand=0.5).backoff(1) == pytest.approx(0.75)


def test_retries_stop_after_the_configured_attempts() -> None:
    p = policy()
    assert p.delay(2, "server_error", None)[0] == 1.5
    assert p.delay(3, "server_error", None) == (None, "retries exhausted")


def test_reasons_not_listed_are_not_retried() -> None:
    assert policy().delay(0, "timeout", None) == (None, "not retried")
    assert policy().delay(0, "invalid_request", None)[0] is None


def test_retry_after_raises_the_wait() -> None:
    wait, why = policy(retry_after_cap=5).delay(0, "rate_limited", 2.0)
    assert (wait, why) == (2.0, "backoff")


def test_retry_after_shorter_than_the_backoff_keeps_the_backoff() -> None:
    assert policy().delay(1, "rate_limited", 0.05)[0] == 1.0


def test_retry_after_over_the_cap_moves_on_instead_of_waiting() -> None:
    wait, why = policy(retry_after_cap=5).delay(0, "rate_limited", 30.0)
    assert wait is None and "exceeds the cap" in why


def test_zero_attempts_never_retries() -> None:
    assert policy(attempts=0).delay(0, "overloaded", None)[0] is None
