"""Admission under load (issue #13's acceptance): 1,000 concurrent streams, in all three
dialects, against an upstream the gateway limits to 200 in flight. Every request either
completes or gets its dialect's overload answer with retry-after; none times out (504), no
breaker trips, the upstream stays healthy (its probes have their own connections), and the
gateway process's RSS stays under the bound docs/operations.md states.

The fake upstream and the clients are plain asyncio (tests/support/load.py), the gateway a real
subprocess, so its RSS is its own; the whole test is bounded (~30 s on two shared cores)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.load import Answer, UpstreamProcess, gateway_process, post

N = 1000
LIMIT = 200
MiB = 1024 * 1024
# docs/operations.md, "Memory": baseline + per concurrent stream.
BASE_BOUND = 100 * MiB
PER_STREAM_BOUND = 64 * 1024

CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "m",
    "max_tokens": 16,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def config(upstream: UpstreamProcess) -> dict[str, Any]:
    return {
        "upstreams": [
            {
                "name": "up",
                "dialect": "openai",
                "base_url": upstream.url + "/v1",
                "timeouts": {"connect": 10, "first_byte": 30, "total": 60, "stream_idle": 10},
                "limits": {
                    "max_concurrency": LIMIT,
                    "queue": 200,
                    "queue_timeout": 20.0,
                    "retry_after": 2,
                },
                "health": {"interval": 0.5, "timeout": 1.0},
            }
        ],
        "routes": [{"model": "m", "targets": [{"upstream": "up", "model": "upstream-model"}]}],
    }


async def _one(port: int, i: int) -> tuple[str, Answer]:
    kind = ("openai", "anthropic", "gemini")[i % 3]
    if kind == "openai":
        return kind, await post(port, "/v1/chat/completions", CHAT)
    if kind == "anthropic":
        headers = {"anthropic-version": "2023-06-01"}
        return kind, await post(port, "/v1/messages", MESSAGES, headers)
    return kind, await post(port, "/v1beta/models/m:streamGenerateContent?alt=sse", GEMINI)


def _completed(kind: str, answer: Answer) -> bool:
    if answer.status != 200:
        return False
    marker = {"openai": b"data: [DONE]", "anthropic": b"message_stop", "gemini": b"finishReason"}
    return marker[kind] in answer.body and b"t9 " in answer.body and b'"error"' not in answer.body


def _overload(kind: str, answer: Answer) -> bool:
    """The dialect's own overload answer, with retry-after."""
    if "retry-after" not in answer.headers:
        return False
    body = json.loads(answer.body)
    if kind == "openai":
        error = body["error"]
        return answer.status == 429 and error["code"] == "rate_limit_exceeded"
    if kind == "anthropic":
        return answer.status == 529 and body["error"]["type"] == "overloaded_error"
    return answer.status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_1000_streams_against_a_200_limit_complete_or_get_the_overload_answer(
    tmp_path: Path,
) -> None:
    async with (
        UpstreamProcess(frames=10, delay=0.15) as upstream,
        gateway_process(tmp_path, config(upstream)) as gw,
    ):
        before = gw.rss()
        peak = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, gw.rss())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*(_one(gw.port, i) for i in range(N))), 120)
        elapsed = time.monotonic() - started
        done.set()
        await sampler
        async with httpx.AsyncClient(base_url=gw.url, trust_env=False, timeout=5) as client:
            ready = (await client.get("/ready")).json()
            metrics = (await client.get("/metrics")).text
        stats = await upstream.stats()

    completed = [r for r in results if _completed(*r)]
    overloaded = [r for r in results if _overload(*r)]
    others = [r for r in results if not _completed(*r) and not _overload(*r)]
    summary = (
        f"{len(completed)} completed, {len(overloaded)} overloaded, {len(others)} other;"
        f" upstream peak {stats['peak']}; {elapsed:.1f}s; RSS {before / MiB:.0f} ->"
        f" {peak / MiB:.0f} MiB"
    )
    print(summary)
    first = others[0][1].body[:300] if others else b""
    assert not others, f"{summary}; first other: {first!r}"
    assert len(completed) >= LIMIT and overloaded, summary
    assert {k for k, _ in overloaded} == {"openai", "anthropic", "gemini"}, summary
    assert not any(a.status == 504 for _, a in results)
    assert stats["peak"] <= LIMIT  # the limit held
    assert stats["served"] == len(completed)  # nothing refused reached the upstream
    assert ready == {"ready": True, "upstreams": {"up": True}}
    assert _metric(metrics, 'serving_circuit_transitions_total{state="open"') == 0
    assert not re.search(r"serving_circuit_state\{[^}]*\} [12]", metrics)
    assert _metric(metrics, "serving_endpoint_healthy{") == 1
    assert _metric(metrics, 'serving_health_checks_total{endpoint="' + upstream.url) > 0
    assert _metric(metrics, 'serving_fallbacks_total{reason="saturated"') == len(overloaded)
    assert peak < BASE_BOUND + N * PER_STREAM_BOUND, summary
