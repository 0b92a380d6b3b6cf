"""The counters store behind per-key limits, in-process and on a real redis-server: the same
answers from both, all-or-nothing takes, expiry, and atomicity under concurrent takers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from serving.gateway.state.counters import (
    Counters,
    CountersUnavailable,
    MemoryCounters,
    RedisCounters,
    Rule,
)
from tests.support.redis_server import redis_server
from tests.support.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Counters]:
    if request.param == "memory":
        counters: Counters = MemoryCounters()
    else:
        counters = RedisCounters(redis_url, timeout=2.0)
    yield counters
    await counters.aclose()


def _rule(name: str, amount: float, limit: float, prev: str | None = None, w: float = 0.0) -> Rule:
    return Rule(name, prev, w, amount, limit, ttl=60)


async def test_take_admits_up_to_the_limit_then_refuses(
    store: Counters, request: pytest.FixtureRequest
) -> None:
    name = f"t:{{{request.node.name}}}:a"
    verdicts = [await store.take([_rule(name, 1, 3)]) for _ in range(5)]
    assert [v.denied for v in verdicts] == [None, None, None, 0, 0]
    assert [v.current[0] for v in verdicts] == [0, 1, 2, 3, 3]


async def test_a_refused_take_adds_nothing_to_any_rule(
    store: Counters, request: pytest.FixtureRequest
) -> None:
    a, b = f"t:{{{request.node.name}}}:a", f"t:{{{request.node.name}}}:b"
    await store.add([(b, 10, 60)])
    verdict = await store.take([_rule(a, 1, 5), _rule(b, 0, 10)])  # b is full: a check fails
    assert verdict.denied == 1
    again = await store.take([_rule(a, 1, 5)])
    assert again.current == (0.0,)  # the refused take did not count against a


async def test_the_previous_window_counts_by_its_weight(
    store: Counters, request: pytest.FixtureRequest
) -> None:
    cur, prev = f"t:{{{request.node.name}}}:1", f"t:{{{request.node.name}}}:0"
    await store.add([(prev, 8, 60)])
    # 8 x 0.5 = 4 used of 5: one more fits, a second does not
    assert (await store.take([_rule(cur, 1, 5, prev, 0.5)])).denied is None
    second = await store.take([_rule(cur, 1, 5, prev, 0.5)])
    assert second.denied == 0
    assert second.current == (1.0,) and second.previous == (8.0,)
    # a check-only rule (amount 0) passes while usage is under the limit
    assert (await store.take([_rule(cur, 0, 5.5, prev, 0.5)])).denied is None
    assert (await store.take([_rule(cur, 0, 5, prev, 0.5)])).denied == 0


async def test_fractional_amounts_add_up(store: Counters, request: pytest.FixtureRequest) -> None:
    name = f"t:{{{request.node.name}}}:usd"
    await store.add([(name, 0.25, 60), (name, 0.125, 60)])
    verdict = await store.take([_rule(name, 0, 1)])
    assert verdict.current == (0.375,)


async def test_concurrent_takers_never_exceed_the_limit(
    store: Counters, request: pytest.FixtureRequest
) -> None:
    name = f"t:{{{request.node.name}}}:race"
    # more takers than the Redis pool has connections: they queue, and exactly 10 get through
    verdicts = await asyncio.gather(*(store.take([_rule(name, 1, 10)]) for _ in range(200)))
    assert sum(v.denied is None for v in verdicts) == 10


async def test_memory_buckets_expire_and_are_swept() -> None:
    clock = Clock()
    store = MemoryCounters(clock)
    await store.add([(f"b{i}", 1, 10) for i in range(100)])
    clock.now += 11
    assert (await store.take([_rule("b0", 0, 1)])).current == (0.0,)
    for _ in range(MemoryCounters._SWEEP_EVERY):
        await store.add([("live", 1, 100)])
    assert len(store) == 1


async def test_redis_buckets_expire(redis_url: str) -> None:
    store = RedisCounters(redis_url, timeout=2.0)
    try:
        await store.take([Rule("t:{exp}:a", None, 0, 1, 5, ttl=0.2)])
        await asyncio.sleep(0.4)
        assert (await store.take([Rule("t:{exp}:a", None, 0, 0, 5, ttl=0.2)])).current == (0.0,)
    finally:
        await store.aclose()


async def test_a_redis_that_does_not_answer_is_unavailable() -> None:
    store = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    try:
        with pytest.raises(CountersUnavailable):
            await store.take([_rule("t:{x}:a", 1, 5)])
        with pytest.raises(CountersUnavailable):
            await store.add([("t:{x}:a", 1, 5)])
    finally:
        await store.aclose()


def test_redis_server_fixture_is_real(tmp_path: Path) -> None:
    import redis

    with redis_server(tmp_path) as url:
        assert redis.Redis.from_url(url).ping() is True
