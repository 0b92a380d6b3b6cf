"""The per-upstream admission gate: limits, FIFO queue, queue timeout, per-endpoint slots."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from serving.gateway.admission import UpstreamGate
from serving.gateway.app import create_app
from serving.gateway.errors import Saturated
from serving.gateway.gatekeeper import Gatekeeper
from serving.gateway.metrics import Metrics
from serving.gateway.settings import Limits, Server, parse_settings
from tests.support.load import StreamUpstream, post
from tests.support.servers import serve


def gate(endpoints: int = 1, health: list[bool] | None = None, **limits: object) -> UpstreamGate:
    return UpstreamGate("up", endpoints, Limits.model_validate(limits), Metrics(), lambda: health)


async def test_without_limits_every_request_gets_the_least_busy_endpoint() -> None:
    g = gate(endpoints=3)
    picks = [await g.acquire() for _ in range(6)]
    assert sorted(picks) == [0, 0, 1, 1, 2, 2]
    assert g.total == 6


async def test_a_full_upstream_queues_in_order_and_hands_freed_slots_over() -> None:
    g = gate(max_concurrency=1, queue=2, queue_timeout=5)
    first = await g.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        i = await g.acquire()
        order.append(name)
        await asyncio.sleep(0)
        g.release(i)

    a = asyncio.create_task(wait("a"))
    await asyncio.sleep(0)
    b = asyncio.create_task(wait("b"))
    await asyncio.sleep(0)
    with pytest.raises(Saturated) as full:  # queue of 2 is full
        await g.acquire()
    assert full.value.retry_after == 1.0
    assert order == []
    g.release(first)
    await asyncio.gather(a, b)
    assert order == ["a", "b"]
    assert g.total == 0


async def test_a_wait_longer_than_the_queue_timeout_is_saturated() -> None:
    g = gate(max_concurrency=1, queue=5, queue_timeout=0.05, retry_after=3)
    await g.acquire()
    with pytest.raises(Saturated) as exc:
        await g.acquire()
    assert "no slot freed within 0.05s" in str(exc.value)
    assert exc.value.retry_after == 3
    assert g.total == 1 and not g._waiters


async def test_a_cancelled_waiter_leaves_the_queue_and_never_leaks_a_slot() -> None:
    g = gate(max_concurrency=1, queue=5, queue_timeout=5)
    i = await g.acquire()
    waiter = asyncio.create_task(g.acquire())
    await asyncio.sleep(0)
    g.release(i)  # handed to the waiter...
    waiter.cancel()  # ...which goes away before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert g.total == 0
    assert await g.acquire() == 0


async def test_per_endpoint_limits_skip_full_and_unhealthy_endpoints() -> None:
    g = gate(endpoints=3, health=[True, False, True], per_endpoint=1, queue=0)
    assert sorted([await g.acquire(), await g.acquire()]) == [0, 2]
    with pytest.raises(Saturated):
        await g.acquire()  # endpoint 1 is unhealthy, the others are full
    g.release(2)
    assert await g.acquire() == 2


async def test_a_saturated_target_moves_the_chain_on_and_never_trips_its_breaker() -> None:
    busy, spare = StreamUpstream(frames=20, delay=0.1), StreamUpstream(frames=1, delay=0)
    await busy.start()
    await spare.start()
    strict = {"min_requests": 1, "failure_rate": 0.1, "window": 60}  # one failure would trip it
    settings = parse_settings(
        {
            "upstreams": [
                {
                    "name": "busy",
                    "base_url": busy.url + "/v1",
                    "limits": {"max_concurrency": 1},
                    "circuit": strict,
                },
                {"name": "spare", "base_url": spare.url + "/v1"},
            ],
            "routes": [
                {
                    "model": "m",
                    "targets": [
                        {"upstream": "busy", "model": "x"},
                        {"upstream": "spare", "model": "x"},
                    ],
                }
            ],
        }
    )
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    try:
        with serve(create_app(settings)) as url:
            port = int(url.rsplit(":", 1)[1])
            held = asyncio.create_task(post(port, "/v1/chat/completions", body))
            while busy.active < 1:
                await asyncio.sleep(0.02)
            moved = [await post(port, "/v1/chat/completions", body) for _ in range(3)]
            first = await held
            metrics = httpx.get(url + "/metrics", timeout=5).text
    finally:
        await busy.stop()
        await spare.stop()
    assert first.status == 200 and first.headers["x-serving-target"] == "busy/x"
    for answer in moved:
        assert answer.status == 200
        assert answer.headers["x-serving-target"] == "spare/x"
        assert answer.headers["x-serving-fallback"] == "busy/x:saturated"
    assert 'serving_circuit_state{target="busy/x"} 0.0' in metrics
    assert 'serving_circuit_transitions_total{state="open",target="busy/x"}' not in metrics
    assert 'serving_fallbacks_total{reason="saturated",route="m"} 3.0' in metrics
    assert busy.served == 1 and spare.served == 3


async def test_the_in_flight_gauges_read_the_live_counts_when_scraped() -> None:
    metrics = Metrics()
    g = UpstreamGate("up", 2, Limits(), metrics, lambda: None)
    keeper = Gatekeeper(Server(), metrics)

    def scraped(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    held = [await g.acquire() for _ in range(3)]
    entries = [keeper.enter(), keeper.enter()]
    assert scraped("serving_upstream_in_flight", upstream="up") == 3
    assert scraped("serving_in_flight_requests") == 2
    g.release(held.pop())
    keeper.leave(entries.pop())
    assert scraped("serving_upstream_in_flight", upstream="up") == 2
    assert scraped("serving_in_flight_requests") == 1
