"""Relaying same-dialect streams: completeness is read from the frames, never from a byte
search, and a clean finish is recognised however the network splits the frames."""

from __future__ import annotations

import httpx

from tests.support.fake_upstream import Reply, chat_stream
from tests.support.gateway_fixtures import GatewayUnderTest

BODY = {"model": "smollm2", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _relay(gateway: GatewayUnderTest, reply: Reply) -> bytes:
    gateway.upstream.script(reply)
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=BODY) as response:
        return b"".join(response.iter_bytes())


def _split_done(frames: list[bytes]) -> list[bytes]:
    """Send `data: [DONE]` in two network writes, split inside the marker."""
    assert frames[-1] == b"data: [DONE]\n\n"
    return [*frames[:-1], b"data: [DO", b"NE]\n\n"]


def test_done_marker_split_across_chunks_is_a_clean_finish(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(("a", "b"))
    raw = _relay(gateway, Reply.sse(_split_done(frames), frame_delay=0.05))
    assert raw == b"".join(frames)  # byte for byte, [DONE] once


def test_frames_split_anywhere_are_relayed_unchanged(gateway: GatewayUnderTest) -> None:
    whole = b"".join(chat_stream(("one", " two", " three")))
    pieces = [whole[i : i + 7] for i in range(0, len(whole), 7)]
    assert _relay(gateway, Reply.sse(pieces)) == whole


def test_stream_without_finish_ends_with_an_error(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(("a", "b"), done=False)
    finish_at = next(i for i, f in enumerate(frames) if b'"finish_reason": "stop"' in f)
    raw = _relay(gateway, Reply.sse(frames[:finish_at]))  # a clean close, but no finish
    assert b"[DONE]" not in raw
    assert b'"error"' in raw.split(b"\n\n")[-2]


def test_cut_stream_whose_text_contains_the_marker_is_not_finished(
    gateway: GatewayUnderTest,
) -> None:
    """The generated text says `data: [DONE]`: a byte search would call the cut a finish."""
    frames = chat_stream(("the stream ends with data: [DONE]\n\n", "and more"))
    raw = _relay(gateway, Reply.sse(frames, cut_after=2))
    assert not raw.endswith(b"data: [DONE]\n\n")
    assert b'"error"' in raw.split(b"\n\n")[-2]


def test_malformed_frame_mid_stream_is_not_relayed(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(("a", "b", "c"))
    bad = b"data: {this is not json\n\n"
    # Paced, so the first token is relayed before the bad frame arrives (mid-stream); had they
    # come in one read, the stream would fail before its first byte, and fail over.
    raw = _relay(gateway, Reply.sse([*frames[:2], bad, *frames[2:]], frame_delay=0.05))
    assert bad not in raw
    assert raw.startswith(b"".join(frames[:2]))
    assert b"malformed" in raw.split(b"\n\n")[-2]
    assert b"[DONE]" not in raw
