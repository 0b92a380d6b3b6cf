"""Relaying same-dialect streams: a clean finish is recognised even when its marker is split."""

from __future__ import annotations

import httpx

from tests.support.fake_upstream import Reply, chat_stream
from tests.support.gateway_fixtures import GatewayUnderTest


def _split_done(frames: list[bytes]) -> list[bytes]:
    """Send `data: [DONE]` in two network writes, split inside the marker."""
    assert frames[-1] == b"data: [DONE]\n\n"
    return [*frames[:-1], b"data: [DO", b"NE]\n\n"]


def test_done_marker_split_across_chunks_is_a_clean_finish(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.sse(_split_done(chat_stream(("a", "b"))), frame_delay=0.05))
    body = {"model": "smollm2", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        raw = b"".join(response.iter_bytes())
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b'"error"' not in raw


def test_stream_without_its_marker_ends_with_an_error(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(("a", "b"), done=False)
    gateway.upstream.script(Reply.sse(frames))
    body = {"model": "smollm2", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        raw = b"".join(response.iter_bytes())
    assert b"[DONE]" not in raw
    assert raw.rstrip().endswith(b"}}")
    assert b'"error"' in raw.split(b"\n\n")[-2]
