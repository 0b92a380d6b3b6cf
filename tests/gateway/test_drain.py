"""Graceful drain of `serving gateway` (a real subprocess) on SIGTERM: /ready fails at once,
new requests get their dialect's 503 with retry-after, streams in flight finish; a stream that
outlives the deadline ends with its dialect's error event and the exit status says so."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from serving.engine.exitcodes import ExitCode
from tests.support.load import StreamUpstream, gateway_process, post

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def config(upstream: StreamUpstream, drain: dict[str, float]) -> dict[str, Any]:
    return {
        "server": {"drain": drain},
        "upstreams": [
            {
                "name": "up",
                "dialect": "openai",
                "base_url": upstream.url + "/v1",
                "timeouts": {"connect": 2, "first_byte": 10, "total": 60, "stream_idle": 10},
            }
        ],
        "routes": [{"model": "m", "targets": [{"upstream": "up", "model": "upstream-model"}]}],
    }


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_sigterm_fails_ready_first_refuses_new_work_and_lets_streams_finish(
    tmp_path: Path,
) -> None:
    upstream = StreamUpstream(frames=25, delay=0.1)
    await upstream.start()
    try:
        drain = {"window": 1.0, "deadline": 20.0, "retry_after": 7}
        async with gateway_process(tmp_path, config(upstream, drain)) as gw:
            streams = [
                asyncio.create_task(post(gw.port, "/v1/chat/completions", {**CHAT, "stream": True}))
                for _ in range(20)
            ]
            await _until(lambda: upstream.active == 20, 20, "20 streams in flight")
            gw.terminate()
            async with httpx.AsyncClient(base_url=gw.url, trust_env=False, timeout=5) as client:
                ready = await client.get("/ready")
                ready_failed_at = time.monotonic()
                assert ready.status_code == 503
                assert ready.json() == {"ready": False, "draining": True}
            refused_openai = await post(gw.port, "/v1/chat/completions", CHAT)
            refused_anthropic = await post(
                gw.port, "/v1/messages", MESSAGES, {"anthropic-version": "2023-06-01"}
            )
            answers = await asyncio.gather(*streams)
            status = await asyncio.to_thread(gw.wait, 30)
            output = gw.output()
    finally:
        await upstream.stop()

    assert refused_openai.status == 503
    assert refused_openai.headers["retry-after"] == "7"
    assert json.loads(refused_openai.body)["error"]["type"] == "server_error"
    assert refused_anthropic.status == 503
    assert refused_anthropic.headers["retry-after"] == "7"
    assert json.loads(refused_anthropic.body)["type"] == "error"
    for answer in answers:
        assert answer.status == 200
        assert answer.body.rstrip().endswith(b"data: [DONE]"), answer.body[-200:]
        assert b'"error"' not in answer.body
        assert answer.body.count(b"t24 ") == 1  # every frame arrived
        assert answer.done_at > ready_failed_at  # readiness failed while they still ran
    assert upstream.served == 20
    assert status == 0, output


async def test_a_stream_past_the_deadline_ends_with_the_dialects_error_event(
    tmp_path: Path,
) -> None:
    # 10 s streams, and 10 s before a whole answer: well past the deadline
    upstream = StreamUpstream(frames=200, delay=0.05, whole_delay=10)
    await upstream.start()
    try:
        drain = {"window": 0.2, "deadline": 1.5, "retry_after": 3}
        async with gateway_process(tmp_path, config(upstream, drain)) as gw:
            openai_stream = asyncio.create_task(
                post(gw.port, "/v1/chat/completions", {**CHAT, "stream": True})
            )
            anthropic_stream = asyncio.create_task(
                post(
                    gw.port,
                    "/v1/messages",
                    {**MESSAGES, "stream": True},
                    {"anthropic-version": "2023-06-01"},
                )
            )
            whole = asyncio.create_task(post(gw.port, "/v1/chat/completions", CHAT))
            await _until(lambda: upstream.active == 3, 20, "3 requests in flight")
            signalled = time.monotonic()
            gw.terminate()
            openai_answer, anthropic_answer, whole_answer = await asyncio.gather(
                openai_stream, anthropic_stream, whole
            )
            status = await asyncio.to_thread(gw.wait, 30)
            exited = time.monotonic()
            output = gw.output()
    finally:
        await upstream.stop()

    # The raw relay (OpenAI client, OpenAI upstream) ends with OpenAI's error chunk.
    assert openai_answer.status == 200
    assert b"data: [DONE]" not in openai_answer.body
    last = openai_answer.body.strip().split(b"\n\n")[-1]
    assert last.startswith(b"data: ")
    error = json.loads(last[6:])["error"]
    assert "drain deadline" in error["message"]
    # The translated stream (Anthropic client) ends with Anthropic's `event: error`.
    assert anthropic_answer.status == 200
    tail = anthropic_answer.body.strip().split(b"\n\n")[-1]
    assert tail.startswith(b"event: error"), tail
    assert b"message_stop" not in anthropic_answer.body
    # A request whose answer had not started gets the dialect's 503, with retry-after.
    assert whole_answer.status == 503
    assert whole_answer.headers["retry-after"] == "3"
    assert "drain deadline" in json.loads(whole_answer.body)["error"]["message"]
    assert status == ExitCode.DRAIN_INCOMPLETE, output
    assert "cut 3 request(s)" in output
    assert exited - signalled < 1.5 + 8  # the deadline, the cut grace, and process exit
