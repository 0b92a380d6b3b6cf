"""Per-key limits on a clock the test moves: the sliding minute, the `retry-after` it gives,
tokens and spend counted after the answer, the calendar-month budget."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.gateway.errors import RateLimited
from serving.gateway.metrics import Metrics
from serving.gateway.policy.keys import KeyPolicy
from serving.gateway.policy.limits import KeyLimits
from serving.gateway.state.counters import MemoryCounters


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


START = dt.datetime(2026, 3, 31, 23, 58, 0, tzinfo=dt.UTC).timestamp()  # a minute start


def limits(clock: Clock) -> KeyLimits:
    return KeyLimits(MemoryCounters(clock), Metrics(), clock=clock)


async def test_requests_slide_out_of_the_window_and_retry_after_says_when() -> None:
    clock = Clock(START + 30)  # half way through a minute
    lim = limits(clock)
    key = KeyPolicy("k", requests_per_minute=4)
    for _ in range(4):
        await lim.admit(key)
    with pytest.raises(RateLimited) as info:
        await lim.admit(key)
    assert info.value.retry_after == 30 + 15  # this minute ends in 30 s; then 3 of 4 must slide
    clock.now += 45  # 15 s into the next minute: 4 x 0.75 = 3 used, one slot free
    await lim.admit(key)
    with pytest.raises(RateLimited):
        await lim.admit(key)
    clock.now += 120  # both windows gone
    for _ in range(4):
        await lim.admit(key)


async def test_the_previous_minute_weighs_less_as_it_slides_away() -> None:
    clock = Clock(START + 50)
    lim = limits(clock)
    key = KeyPolicy("k", requests_per_minute=10)
    for _ in range(10):
        await lim.admit(key)
    clock.now = START + 60 + 6  # 10 x 0.9 = 9 used: one fits, then 10 x 0.9 + 1 = 10 is full
    await lim.admit(key)
    with pytest.raises(RateLimited) as info:
        await lim.admit(key)
    # room for one more once the previous minute weighs 8 of 10 plus this minute's 1: at 12 s
    assert info.value.retry_after == 6


async def test_tokens_are_counted_after_the_answer_and_refuse_once_spent() -> None:
    clock = Clock(START)
    lim = limits(clock)
    key = KeyPolicy("k", tokens_per_minute=100)
    await lim.admit(key)
    await lim.settle(key, 60, None)
    await lim.admit(key)  # 60 < 100: admitted
    await lim.settle(key, 60, None)
    with pytest.raises(RateLimited) as info:
        await lim.admit(key)  # 120 >= 100
    assert "100 tokens per minute" in info.value.message
    assert 1 <= (info.value.retry_after or 0) <= 120


async def test_the_budget_is_per_calendar_month() -> None:
    clock = Clock(START)  # two minutes before April (UTC)
    lim = limits(clock)
    key = KeyPolicy("k", monthly_budget_usd=0.5)
    await lim.admit(key)
    await lim.settle(key, 10, 0.75)
    with pytest.raises(RateLimited) as info:
        await lim.admit(key)
    assert info.value.code == "insufficient_quota"
    assert info.value.retry_after == 120  # until 1 April 00:00 UTC
    clock.now += 120
    await lim.admit(key)  # a new month, a new budget


async def test_keys_do_not_share_limits_and_unlimited_keys_cost_nothing() -> None:
    clock = Clock(START)
    lim = limits(clock)
    a, b = KeyPolicy("a", requests_per_minute=1), KeyPolicy("b", requests_per_minute=1)
    await lim.admit(a)
    await lim.admit(b)
    with pytest.raises(RateLimited):
        await lim.admit(a)
    for _ in range(100):
        await lim.admit(KeyPolicy("open"))
        await lim.admit(None)
    counters = lim.counters
    assert isinstance(counters, MemoryCounters)
    assert len(counters) == 2  # one bucket per limited key; nothing for unlimited ones
