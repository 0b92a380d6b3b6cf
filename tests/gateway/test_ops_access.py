"""Ops endpoints on their own port or behind a key, and the gateway-wide in-flight limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.load import StreamUpstream, gateway_process, post
from tests.support.servers import free_port, serve


def config(upstream_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "upstreams": [{"name": "up", "base_url": upstream_url + "/v1"}],
        "routes": [{"model": "m", "targets": [{"upstream": "up", "model": "upstream-model"}]}],
        **extra,
    }


async def test_a_separate_ops_port_serves_metrics_and_ready_detail_the_api_port_does_not(
    tmp_path: Path,
) -> None:
    upstream = StreamUpstream(frames=1, delay=0)
    await upstream.start()
    ops_port = free_port()
    try:
        async with gateway_process(tmp_path, config(upstream.url), ops_port=ops_port) as gw:
            async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
                api, ops = gw.url, f"http://127.0.0.1:{ops_port}"
                assert (await client.get(api + "/metrics")).status_code == 404
                assert (await client.get(api + "/ready")).json() == {"ready": True}
                metrics = await client.get(ops + "/metrics")
                assert metrics.status_code == 200 and "serving_requests_total" in metrics.text
                assert (await client.get(ops + "/ready")).json() == {
                    "ready": True,
                    "upstreams": {"up": True},
                }
                assert (await client.get(ops + "/health")).status_code == 200
            on_ops = await post(ops_port, "/v1/chat/completions", {"model": "m"})
            assert on_ops.status == 404  # no API traffic on the ops port
    finally:
        await upstream.stop()


def test_an_ops_key_guards_metrics_and_ready_detail_on_the_api_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPS_KEY", "s3cret-ops")
    settings = parse_settings(config("http://127.0.0.1:9", ops={"key_env": "OPS_KEY"}))
    with serve(create_app(settings)) as url:
        assert httpx.get(url + "/metrics", timeout=5).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert httpx.get(url + "/metrics", headers=wrong, timeout=5).status_code == 401
        key = {"authorization": "Bearer s3cret-ops"}
        assert httpx.get(url + "/metrics", headers=key, timeout=5).status_code == 200
        bare = httpx.get(url + "/ready", timeout=5).json()
        assert "upstreams" not in bare
        detailed = httpx.get(url + "/ready", headers=key, timeout=5).json()
        assert detailed["upstreams"] == {"up": False}


async def test_the_gateway_wide_in_flight_limit_answers_the_dialects_overload() -> None:
    upstream = StreamUpstream(frames=20, delay=0.1)
    await upstream.start()
    try:
        settings = parse_settings(config(upstream.url, server={"max_in_flight": 2}))
        with serve(create_app(settings)) as url:
            port = int(url.rsplit(":", 1)[1])
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            held = [asyncio.create_task(post(port, "/v1/chat/completions", body)) for _ in range(2)]
            while upstream.active < 2:
                await asyncio.sleep(0.02)
            openai = await post(port, "/v1/chat/completions", body)
            anthropic = await post(
                port,
                "/v1/messages",
                {**body, "max_tokens": 5},
                {"anthropic-version": "2023-06-01"},
            )
            gemini = await post(port, "/v1beta/models/m:generateContent", {"contents": []})
            done = await asyncio.gather(*held)
    finally:
        await upstream.stop()
    assert (openai.status, anthropic.status, gemini.status) == (429, 529, 429)
    assert b"rate_limit_exceeded" in openai.body
    assert b"overloaded_error" in anthropic.body
    assert b"RESOURCE_EXHAUSTED" in gemini.body
    assert all(a.headers.get("retry-after") == "1" for a in (openai, anthropic, gemini))
    assert all(a.status == 200 and b"[DONE]" in a.body for a in done)
