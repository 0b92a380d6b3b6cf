"""Golden tests of Gemini's pure translations, in both directions, through the canonical model.

Each file in golden/ holds `kind`, `input` and `expected`; `kind` names one conversion below.
A changed golden is a reviewed change: nothing here rewrites them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic import protocol as ap
from serving.gateway.dialects.anthropic import stream as astream
from serving.gateway.dialects.anthropic import translate as at
from serving.gateway.dialects.gemini import protocol as gp
from serving.gateway.dialects.gemini import stream as gstream
from serving.gateway.dialects.gemini import translate as gt
from serving.gateway.dialects.openai import protocol as op
from serving.gateway.dialects.openai import stream as ostream
from serving.gateway.dialects.openai import translate as ot
from serving.gateway.sse import SSEDecoder
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"
_RANDOM_CALL_ID = re.compile(r"^call_[0-9a-f]{24}$")


def _stable(obj: Any) -> Any:
    """Random ids (response-side synthesised call ids, timestamps) replaced by placeholders."""
    if isinstance(obj, dict):
        return {
            k: 0 if k == "created" else "call_ID" if k == "id" and _random(v) else _stable(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _random(value: Any) -> bool:
    return isinstance(value, str) and bool(_RANDOM_CALL_ID.match(value))


def _sse(raw: bytes) -> list[Any]:
    frames = SSEDecoder().feed(raw)
    return [
        json.loads(f.data) if f.event is None else [f.event, json.loads(f.data)] for f in frames
    ]


def _gemini_request(data: dict[str, Any]) -> c.ChatRequest:
    return gt.request_to_canonical(gp.GenerateContentRequest.model_validate(data), "gemini-alias")


# ---- requests ------------------------------------------------------------------------------


def gemini_request_to_openai(data: dict[str, Any]) -> Any:
    return ot.request_from_canonical(_gemini_request(data), "upstream-model")


def gemini_request_to_anthropic(data: dict[str, Any]) -> Any:
    return at.request_from_canonical(_gemini_request(data), "claude-upstream")


def openai_request_to_gemini(data: dict[str, Any]) -> Any:
    req = ot.request_to_canonical(op.ChatCompletionRequest.model_validate(data))
    return gt.request_from_canonical(req)


def anthropic_request_to_gemini(data: dict[str, Any]) -> Any:
    req = at.request_to_canonical(ap.MessagesRequest.model_validate(data))
    return gt.request_from_canonical(req)


def gemini_request_to_gemini(data: dict[str, Any]) -> Any:
    """Through the canonical model and back (a Gemini client on a route whose target is Gemini
    is forwarded untouched; this is the translation a mixed chain would use)."""
    return gt.request_from_canonical(_gemini_request(data))


# ---- responses -----------------------------------------------------------------------------


def gemini_response_to_openai(data: dict[str, Any]) -> Any:
    return _stable(ot.response_from_canonical(gt.response_to_canonical(data), "gpt-alias"))


def gemini_response_to_anthropic(data: dict[str, Any]) -> Any:
    return _stable(at.response_from_canonical(gt.response_to_canonical(data), "claude-alias"))


def openai_response_to_gemini(data: dict[str, Any]) -> Any:
    return gt.response_from_canonical(ot.response_to_canonical(data), "gemini-alias")


def anthropic_response_to_gemini(data: dict[str, Any]) -> Any:
    return gt.response_from_canonical(at.response_to_canonical(data), "gemini-alias")


# ---- streams -------------------------------------------------------------------------------


def _relay(
    feed: Callable[[dict[str, Any]], list[c.StreamEvent]],
    done: Callable[[], list[c.StreamEvent]],
    encode: Callable[[c.StreamEvent], bytes],
    items: list[dict[str, Any]],
) -> bytes:
    """Decode then encode, stopping at a failure as the upstream clients do."""
    raw = b""
    for item in items:
        for event in feed(item):
            raw += encode(event)
            if isinstance(event, c.Failure):
                return raw
    for event in done():
        raw += encode(event)
    return raw


def gemini_stream_to_anthropic(chunks: list[dict[str, Any]]) -> Any:
    decoder, encoder = gstream.ChunkDecoder(), astream.EventEncoder("claude-alias")
    return _stable(_sse(_relay(decoder.feed, decoder.done, encoder.encode, chunks)))


def gemini_stream_to_openai(chunks: list[dict[str, Any]]) -> Any:
    decoder = gstream.ChunkDecoder()
    encoder = ostream.ChunkEncoder("gpt-alias", include_usage=True)
    raw = _relay(decoder.feed, decoder.done, encoder.encode, chunks)
    frames = [f.data for f in SSEDecoder().feed(raw)]
    return [d if d == "[DONE]" else _stable(json.loads(d)) for d in frames]


def openai_stream_to_gemini(chunks: list[dict[str, Any]]) -> Any:
    decoder, encoder = ostream.ChunkDecoder(), gstream.ChunkEncoder("gemini-alias")
    return _sse(_relay(decoder.feed, decoder.done, encoder.encode, chunks))


def anthropic_stream_to_gemini(events: list[dict[str, Any]]) -> Any:
    decoder, encoder = astream.EventDecoder(), gstream.ChunkEncoder("gemini-alias")
    return _sse(_relay(decoder.feed, decoder.done, encoder.encode, events))


KINDS: golden.Kinds = {
    f.__name__: f
    for f in (
        gemini_request_to_openai,
        gemini_request_to_anthropic,
        openai_request_to_gemini,
        anthropic_request_to_gemini,
        gemini_request_to_gemini,
        gemini_response_to_openai,
        gemini_response_to_anthropic,
        openai_response_to_gemini,
        anthropic_response_to_gemini,
        gemini_stream_to_anthropic,
        gemini_stream_to_openai,
        openai_stream_to_gemini,
        anthropic_stream_to_gemini,
    )
}


@pytest.mark.parametrize("path", golden.cases(GOLDEN), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    golden.check(path, KINDS)


def test_every_kind_has_a_golden_case() -> None:
    golden.check_every_kind_used(GOLDEN, KINDS)
