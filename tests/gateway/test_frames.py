"""The frame pipeline and the dialect grammars, unit by unit: frames survive any network split
byte for byte (property-based), each dialect's frames are classified, and a continuation's
events are fitted to the stream the client already has."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway import canonical as c
from serving.gateway.dialects.anthropic.grammar import AnthropicGrammar
from serving.gateway.dialects.gemini.grammar import GeminiGrammar
from serving.gateway.dialects.openai.grammar import OpenAIGrammar
from serving.gateway.frames import Frame, Grammar, Kind, Pipeline, parse_frame, split_frames
from serving.gateway.policy.continuation import Partial, Splice, continuation_request
from tests.support.fake_upstream import anthropic_stream, chat_stream, gemini_stream

texts = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8)


def _chunked(whole: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(x, 0), len(whole)) for x in cuts})
    edges = [0, *points, len(whole)]
    return [whole[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _relay(grammar: Grammar, chunks: list[bytes]) -> bytes:
    pipe = Pipeline(grammar)
    out = b""
    for chunk in chunks:
        sent, failure = pipe.push(chunk)
        assert failure is None
        out += sent
    sent, failure = pipe.close()
    assert failure is None
    return out + sent


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(texts, st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_openai_frames_split_anywhere_pass_byte_for_byte(
    pieces: list[str], cuts: list[int]
) -> None:
    whole = b"".join(chat_stream(pieces))
    grammar = OpenAIGrammar()
    assert _relay(grammar, _chunked(whole, cuts)) == whole
    assert grammar.partial_text == "".join(pieces)
    assert grammar.finished and grammar.done and grammar.usage_seen


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(texts, st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_anthropic_frames_split_anywhere_pass_byte_for_byte(
    pieces: list[str], cuts: list[int]
) -> None:
    whole = b"".join(anthropic_stream(pieces, output_tokens=7))
    grammar = AnthropicGrammar()
    assert _relay(grammar, _chunked(whole, cuts)) == whole
    assert grammar.partial_text == "".join(pieces)
    assert grammar.finished and grammar.done
    assert grammar.usage.output_tokens == 7


@settings(deadline=None)  # a loaded CI machine must not turn slowness into a failure
@given(texts, st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_gemini_crlf_frames_split_anywhere_pass_byte_for_byte(
    pieces: list[str], cuts: list[int]
) -> None:
    whole = b"".join(gemini_stream(pieces, candidates_tokens=5))
    grammar = GeminiGrammar()
    assert _relay(grammar, _chunked(whole, cuts)) == whole
    assert grammar.partial_text == "".join(pieces)
    assert grammar.finished and not grammar.done  # Gemini has no sentinel
    assert grammar.usage.output_tokens == 5


def test_split_frames_keeps_the_unterminated_rest() -> None:
    frames, rest = split_frames(b"data: 1\n\ndata: 2\r\n\r\ndata: 3")
    assert frames == [b"data: 1\n\n", b"data: 2\r\n\r\n"]
    assert rest == b"data: 3"


def test_parse_frame_reads_names_multiline_data_and_skips_comments() -> None:
    assert parse_frame(b": keep-alive\n\n") is None
    frame = parse_frame(b'event: message_stop\ndata: {"a":\ndata: 1}\n\n')
    assert frame == Frame(
        b'event: message_stop\ndata: {"a":\ndata: 1}\n\n', "message_stop", b'{"a":\n1}'
    )


def _data(body: object) -> Frame:
    raw = b"data: " + json.dumps(body).encode() + b"\n\n"
    frame = parse_frame(raw)
    assert frame is not None
    return frame


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            Kind.OTHER,
        ),
        ({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]}, Kind.CONTENT),
        (
            {"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]},
            Kind.CONTENT,
        ),
        ({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, Kind.FINISH),
        (
            {"id": "x", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
            Kind.USAGE,
        ),
        ({"error": {"message": "overloaded"}}, Kind.ERROR),
        ({"id": "x", "choices": "not a list of choices"}, Kind.MALFORMED),
        (["not", "an", "object"], Kind.MALFORMED),
        ({"id": "x", "choices": [{"index": 0, "text": "legacy"}]}, Kind.CONTENT),
    ],
)
def test_openai_grammar_classifies(body: object, kind: Kind) -> None:
    assert OpenAIGrammar().classify(_data(body)) == kind


def test_openai_sentinel_and_bad_json() -> None:
    grammar = OpenAIGrammar()
    frame = parse_frame(b"data: [DONE]\n\n")
    assert frame is not None and grammar.classify(frame) == Kind.DONE
    bad = parse_frame(b"data: {nope\n\n")
    assert bad is not None and grammar.classify(bad) == Kind.MALFORMED


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"type": "ping"}, Kind.OTHER),
        (
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            Kind.OTHER,
        ),
        (
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "a"},
            },
            Kind.CONTENT,
        ),
        (
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 3},
            },
            Kind.FINISH,
        ),
        ({"type": "message_stop"}, Kind.DONE),
        ({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, Kind.ERROR),
        ({"no": "type"}, Kind.MALFORMED),
        ({"type": "content_block_delta", "index": 0}, Kind.MALFORMED),
    ],
)
def test_anthropic_grammar_classifies(body: object, kind: Kind) -> None:
    assert AnthropicGrammar().classify(_data(body)) == kind


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}, Kind.CONTENT),
        (
            {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]},
            Kind.FINISH,
        ),
        ({"candidates": [], "promptFeedback": {"blockReason": "SAFETY"}}, Kind.FINISH),
        ({"usageMetadata": {"promptTokenCount": 3}}, Kind.USAGE),
        ({"error": {"code": 503, "message": "busy"}}, Kind.ERROR),
        ({"candidates": "nope"}, Kind.MALFORMED),
    ],
)
def test_gemini_grammar_classifies(body: object, kind: Kind) -> None:
    assert GeminiGrammar().classify(_data(body)) == kind


def test_pipeline_stops_before_a_malformed_frame() -> None:
    frames = chat_stream(("a", "b"))
    pipe = Pipeline(OpenAIGrammar())
    sent, failure = pipe.push(frames[0] + frames[1] + b"data: {oops\n\n" + frames[2])
    assert sent == frames[0] + frames[1]
    assert failure is not None and failure.kind == "malformed"


def test_tool_call_marks_the_answer_not_continuable() -> None:
    grammar = AnthropicGrammar()
    for raw in anthropic_stream((), tool_uses=[("t1", "f", ['{"a'])], finish=False):
        frame = parse_frame(raw)
        assert frame is not None
        grammar.classify(frame)
    assert grammar.tool_open


def test_splice_carries_the_open_block_on_and_sums_usage() -> None:
    partial = Partial(text=["one two "], content=2, next_index=1, open_text=0, input_tokens=10)
    splice = Splice(partial, continuing=True)
    events: list[c.StreamEvent] = [
        c.Start("s2", "m", 14),
        c.BlockStart(0, "text"),
        c.TextDelta(0, " three"),
        c.BlockStop(0),
        c.BlockStart(1, "tool_call", "id", "f"),
        c.ToolArgsDelta(1, "{}"),
        c.BlockStop(1),
        c.Finish(c.Stop(c.StopReason.TOOL_USE), c.Usage(0, 3)),
    ]
    fitted = [e for event in events for e in splice.fit(event)]
    assert fitted == [
        c.TextDelta(0, "three"),  # leading space dropped: the prefill's trailing one was sent
        c.BlockStop(0),
        c.BlockStart(1, "tool_call", "id", "f"),
        c.ToolArgsDelta(1, "{}"),
        c.BlockStop(1),
        c.Finish(c.Stop(c.StopReason.TOOL_USE), c.Usage(24, 5)),
    ]
    assert partial.prefix == "one two three"


def test_splice_opens_the_next_dense_block_when_none_is_open() -> None:
    partial = Partial(text=["done."], content=1, next_index=1, open_text=None)
    splice = Splice(partial, continuing=True)
    fitted = [e for ev in (c.BlockStart(0, "text"), c.TextDelta(0, "More")) for e in splice.fit(ev)]
    assert fitted == [c.BlockStart(1, "text"), c.TextDelta(1, "More")]


def test_continuation_request_prefills_and_shrinks_the_budget() -> None:
    req = c.ChatRequest(
        "m", [c.Message("user", [c.Text("count")])], sampling=c.Sampling(max_tokens=100)
    )
    out = continuation_request(req, "one two ", 40)
    assert out.messages[-1] == c.Message("assistant", [c.Text("one two")])
    assert out.sampling.max_tokens == 60
    assert out.stream
    assert req.messages[-1].role == "user"  # the original is untouched


def test_an_upstream_error_event_is_not_relayed_and_its_keys_are_masked() -> None:
    key = "sk-upstream-secret-0123456789abcdef"
    echo = {"error": {"message": f"bad key {key}, also Bearer abcdefghijklmnopqrstuvwxyz012345"}}
    pipeline = Pipeline(OpenAIGrammar(), (key,))
    first = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    out, broken = pipeline.push(first + f"data: {json.dumps(echo)}\n\n".encode())
    assert out == first  # the error frame itself never reaches the client
    assert broken is not None and broken.kind == "error"
    assert key not in broken.message and "abcdefghijklmnopqrstuvwxyz012345" not in broken.message
    assert "bad key" in broken.message  # the useful part is kept
