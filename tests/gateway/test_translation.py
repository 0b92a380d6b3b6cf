"""Golden tests of the pure translation paths, through the canonical model, both directions.

Each file in golden/ holds `kind`, `input` and `expected`; `kind` names one conversion below.
Regenerate nothing automatically: a changed golden is a reviewed change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from serving.gateway.dialects.anthropic import protocol as ap
from serving.gateway.dialects.anthropic import stream as astream
from serving.gateway.dialects.anthropic import translate as at
from serving.gateway.dialects.openai import protocol as op
from serving.gateway.dialects.openai import stream as ostream
from serving.gateway.dialects.openai import translate as ot
from serving.gateway.sse import SSEDecoder
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"


def _sse_to_json(raw: bytes) -> list[dict[str, Any]]:
    events = SSEDecoder().feed(raw)
    return [
        {"event": e.event, "data": e.data if e.data == "[DONE]" else json.loads(e.data)}
        for e in events
    ]


def anthropic_request_to_openai(data: dict[str, Any]) -> Any:
    req = at.request_to_canonical(ap.MessagesRequest.model_validate(data))
    return ot.request_from_canonical(req, "upstream-model")


def openai_request_to_anthropic(data: dict[str, Any]) -> Any:
    req = ot.request_to_canonical(op.ChatCompletionRequest.model_validate(data))
    return at.request_from_canonical(req, "claude-upstream")


def openai_response_to_anthropic(data: dict[str, Any]) -> Any:
    out = at.response_from_canonical(ot.response_to_canonical(data), "smollm2")
    out["id"] = "msg_ID"
    return out


def anthropic_response_to_openai(data: dict[str, Any]) -> Any:
    out = ot.response_from_canonical(at.response_to_canonical(data), "gpt-alias")
    out["created"] = 0
    return out


def openai_stream_to_anthropic(chunks: list[dict[str, Any]]) -> Any:
    decoder = ostream.ChunkDecoder()
    encoder = astream.EventEncoder("smollm2")
    raw = b""
    for chunk in chunks:
        for event in decoder.feed(chunk):
            raw += encoder.encode(event)
    for event in decoder.done():
        raw += encoder.encode(event)
    return _sse_to_json(raw)


def anthropic_stream_to_openai(events: list[dict[str, Any]]) -> Any:
    decoder = astream.EventDecoder()
    encoder = ostream.ChunkEncoder("gpt-alias", include_usage=True)
    raw = b""
    for event in events:
        for canonical_event in decoder.feed(event):
            raw += encoder.encode(canonical_event)
    for canonical_event in decoder.done():
        raw += encoder.encode(canonical_event)
    out = _sse_to_json(raw)
    for frame in out:
        if isinstance(frame["data"], dict):
            frame["data"]["created"] = 0
    return out


KINDS: dict[str, Callable[[Any], Any]] = {
    f.__name__: f
    for f in (
        anthropic_request_to_openai,
        openai_request_to_anthropic,
        openai_response_to_anthropic,
        anthropic_response_to_openai,
        openai_stream_to_anthropic,
        anthropic_stream_to_openai,
    )
}


@pytest.mark.parametrize("path", golden.cases(GOLDEN), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    golden.check(path, KINDS)


def test_every_kind_has_a_golden_case() -> None:
    golden.check_every_kind_used(GOLDEN, KINDS)


def test_a_forced_tool_call_ending_with_stop_is_tool_use_in_anthropic() -> None:
    # OpenAI and vLLM finish a named tool_choice with "stop"; the turn still ends in a call.
    body = {
        "id": "x",
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "stop",
            }
        ],
    }
    assert ot.response_to_canonical(body).stop.reason.value == "tool_use"
    body["choices"][0]["message"]["tool_calls"] = []  # type: ignore[index]
    assert ot.response_to_canonical(body).stop.reason.value == "end_turn"
