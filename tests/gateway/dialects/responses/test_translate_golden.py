"""Golden tests for the Responses conversions, both directions and streams.

Each file in golden/ holds `kind`, `input` and `expected`; a changed golden is a reviewed change.
Generated ids (`resp_`, `msg_`, `fc_`) and clocks are replaced by placeholders before comparing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic import protocol as ap
from serving.gateway.dialects.anthropic import translate as at
from serving.gateway.dialects.openai import stream as os_
from serving.gateway.dialects.openai import translate as ot
from serving.gateway.dialects.responses import protocol as rp
from serving.gateway.dialects.responses import stream as rs
from serving.gateway.dialects.responses import translate as rt
from serving.gateway.sse import SSEDecoder
from tests.support import golden

GOLDEN = Path(__file__).parent / "golden"
_GENERATED = re.compile(r"^(resp|msg|fc|call)_[0-9a-f]{32}$")


def normalized(value: Any) -> Any:
    """Generated ids and timestamps as placeholders, so goldens are stable."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        for key in ("created_at", "created"):
            if key in out:
                out[key] = 0
        return out
    if isinstance(value, list):
        return [normalized(v) for v in value]
    if isinstance(value, str) and _GENERATED.match(value):
        return value.split("_", 1)[0] + "_<generated>"
    return value


def _canonical(data: dict[str, Any]) -> c.ChatRequest:
    req = rp.ResponsesRequest.model_validate(data)
    return rt.request_to_canonical(req, rt.input_items(data.get("input")))


def responses_request_to_openai(data: dict[str, Any]) -> Any:
    return ot.request_from_canonical(_canonical(data), "upstream-model")


def responses_request_to_anthropic(data: dict[str, Any]) -> Any:
    return at.request_from_canonical(_canonical(data), "claude-upstream")


def anthropic_request_to_responses(data: dict[str, Any]) -> Any:
    req = at.request_to_canonical(ap.MessagesRequest.model_validate(data))
    return rt.request_from_canonical(req, "gpt-upstream")


def openai_response_to_responses(data: dict[str, Any]) -> Any:
    echo = rt.request_echo(data["request"], data["request"]["model"], True)
    resp = ot.response_to_canonical(data["upstream"])
    return normalized(rt.response_from_canonical(resp, rt.new_id("resp"), echo))


def responses_response_to_openai(data: dict[str, Any]) -> Any:
    return normalized(ot.response_from_canonical(rt.response_to_canonical(data), "client-model"))


def openai_stream_to_responses(data: dict[str, Any]) -> Any:
    """Chat chunks → canonical events → Responses events, as the client receives them."""
    decoder = os_.ChunkDecoder()
    events: list[c.StreamEvent] = []
    for chunk in data["chunks"]:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.done())
    echo = rt.request_echo(data["request"], data["request"]["model"], True)
    encoder = rs.EventEncoder(rt.new_id("resp"), echo, 0)
    sse = SSEDecoder()
    out = [json.loads(e.data) for ev in events for e in sse.feed(encoder.encode(ev))]
    return normalized(out)


def responses_stream_to_canonical(data: list[dict[str, Any]]) -> Any:
    decoder = rs.EventDecoder()
    events = [e for event in data for e in decoder.feed(event)] + decoder.done()
    return [[type(e).__name__, *_fields(e)] for e in events]


def _fields(event: c.StreamEvent) -> list[Any]:
    if isinstance(event, c.Finish):
        usage = event.usage
        return [event.stop.reason.value, usage.input_tokens, usage.output_tokens]
    if isinstance(event, c.Failure):
        return [str(event.error)]
    return [getattr(event, f) for f in event.__slots__]


KINDS: golden.Kinds = {
    f.__name__: f
    for f in (
        responses_request_to_openai,
        responses_request_to_anthropic,
        anthropic_request_to_responses,
        openai_response_to_responses,
        responses_response_to_openai,
        openai_stream_to_responses,
        responses_stream_to_canonical,
    )
}


@pytest.mark.parametrize("path", golden.cases(GOLDEN), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    golden.check(path, KINDS)


def test_every_kind_has_a_golden_case() -> None:
    golden.check_every_kind_used(GOLDEN, KINDS)
