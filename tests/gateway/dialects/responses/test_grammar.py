"""The Responses grammar reads a relayed Responses stream: first token, completeness, usage,
in-stream errors; it never offers a continuation."""

from __future__ import annotations

import json

import pytest

from serving.gateway.dialects.responses.grammar import ResponsesGrammar
from serving.gateway.frames import Pipeline, StreamBroken


def sse(kind: str, **fields: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


CREATED = sse("response.created", response={"id": "resp_1", "status": "in_progress"})
DELTA = sse("response.output_text.delta", delta="Hello", item_id="msg_1", output_index=0)
COMPLETED = sse(
    "response.completed",
    response={"id": "resp_1", "usage": {"input_tokens": 7, "output_tokens": 3}},
)


def test_a_complete_stream_is_finished_with_its_usage_and_relayed_byte_for_byte() -> None:
    pipeline = Pipeline(ResponsesGrammar())
    out, broken = pipeline.push(CREATED + DELTA + COMPLETED)
    assert broken is None and out == CREATED + DELTA + COMPLETED
    grammar = pipeline.grammar
    assert grammar.finished and grammar.usage_seen
    assert (grammar.usage.input_tokens, grammar.usage.output_tokens) == (7, 3)
    assert grammar.partial_text == "Hello"


def test_a_cut_stream_is_not_finished_and_never_continued() -> None:
    pipeline = Pipeline(ResponsesGrammar())
    pipeline.push(CREATED + DELTA)
    assert not pipeline.grammar.finished
    assert pipeline.grammar.tool_open  # continuation is refused for Responses streams
    with pytest.raises(NotImplementedError):
        pipeline.grammar.continuation_encoder()


@pytest.mark.parametrize(
    "bad",
    [
        sse("error", message="overloaded", code="server_error"),
        sse("response.failed", response={"error": {"message": "boom"}}),
        b"data: {not json\n\n",
    ],
)
def test_error_events_and_garbage_break_the_stream_before_they_are_relayed(bad: bytes) -> None:
    pipeline = Pipeline(ResponsesGrammar())
    out, broken = pipeline.push(CREATED + DELTA + bad)
    assert out == CREATED + DELTA
    assert isinstance(broken, StreamBroken)


def test_the_first_content_is_a_text_delta_or_a_function_call() -> None:
    grammar = ResponsesGrammar()
    pipeline = Pipeline(grammar)
    pipeline.push(CREATED)
    assert grammar.content == 0
    call = sse("response.output_item.added", item={"type": "function_call", "name": "f"})
    pipeline.push(call)
    assert grammar.content == 1 and grammar.tool_calls == 1
