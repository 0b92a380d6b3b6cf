"""Property: for any sequence of text and tool-call blocks, the Responses encoder's stream
validates against the official SDK's event types, keeps the ordering invariants, and its final
`response.completed` carries exactly the text and arguments that were streamed; and the
decoder reads the encoder's own stream back to the same canonical events."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from serving.gateway import canonical as c
from serving.gateway.dialects.responses import stream as rs
from serving.gateway.dialects.responses import translate as rt
from serving.gateway.sse import SSEDecoder

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
pieces = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4)
blocks = st.lists(
    st.one_of(
        st.tuples(st.just("text"), pieces),
        st.tuples(st.just("tool_call"), pieces),
    ),
    max_size=5,
)


def canonical_events(spec: list[tuple[str, list[str]]]) -> list[c.StreamEvent]:
    out: list[c.StreamEvent] = [c.Start("up", "m")]
    for i, (kind, parts) in enumerate(spec):
        if kind == "text":
            out.append(c.BlockStart(i, "text"))
            out += [c.TextDelta(i, p) for p in parts]
        else:
            out.append(c.BlockStart(i, "tool_call", f"call_{i}", f"tool_{i}"))
            out += [c.ToolArgsDelta(i, p) for p in parts]
        out.append(c.BlockStop(i))
    out.append(c.Finish(c.Stop(c.StopReason.END_TURN), c.Usage(3, 4)))
    return out


def encoded(events: list[c.StreamEvent]) -> list[dict[str, Any]]:
    encoder = rs.EventEncoder("resp_1", rt.request_echo({}, "m", True), 0)
    decoder = SSEDecoder()
    out = []
    for event in events:
        for sse in decoder.feed(encoder.encode(event)):
            body = json.loads(sse.data)
            assert sse.event == body["type"]
            out.append(body)
    return out


@settings(max_examples=60, deadline=None)
@given(blocks)
def test_encoded_streams_are_valid_and_complete(spec: list[tuple[str, list[str]]]) -> None:
    frames = encoded(canonical_events(spec))
    for frame in frames:
        EVENTS.validate_python(frame)  # the SDK's own event models accept every frame
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    assert frames[0]["type"] == "response.created" and frames[-1]["type"] == "response.completed"
    added = [f["output_index"] for f in frames if f["type"] == "response.output_item.added"]
    done = [f["output_index"] for f in frames if f["type"] == "response.output_item.done"]
    assert added == done == list(range(len(spec)))
    final = frames[-1]["response"]["output"]
    for item, (kind, parts) in zip(final, spec, strict=True):
        if kind == "text":
            assert item["content"][0]["text"] == "".join(parts)
        else:
            assert item["arguments"] == "".join(parts)
        assert item["status"] == "completed"


@settings(max_examples=60, deadline=None)
@given(blocks)
def test_the_decoder_reads_the_encoder_back(spec: list[tuple[str, list[str]]]) -> None:
    events = canonical_events(spec)
    decoder = rs.EventDecoder()
    back = [e for frame in encoded(events) for e in decoder.feed(frame)] + decoder.done()
    assert back[0] == c.Start("resp_1", "m")
    assert back[1:-1] == events[1:-1]
    assert isinstance(back[-1], c.Finish) and back[-1].usage == c.Usage(3, 4)
    want = (
        c.StopReason.TOOL_USE if any(k == "tool_call" for k, _ in spec) else c.StopReason.END_TURN
    )
    assert back[-1].stop.reason == want
