"""The Anthropic and Gemini upstream clients (and vLLM token counting) against scripted fake
servers: what goes on the wire (paths, auth headers, bodies), what comes back as canonical
objects, and how HTTP failures map into the error hierarchy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from serving.gateway import canonical as c
from serving.gateway.errors import (
    ContextWindowExceeded,
    Overloaded,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from serving.gateway.settings import Upstream
from serving.gateway.upstreams.anthropic import AnthropicClient
from serving.gateway.upstreams.base import RawCall, RawResponse, RawStream
from serving.gateway.upstreams.gemini import GeminiClient
from serving.gateway.upstreams.http import HTTPUpstream
from serving.gateway.upstreams.openai_compat import OpenAICompatClient
from serving.gateway.upstreams.transport import Transport
from tests.support import fake_upstream as f
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import serve

KEY = "k-upstream"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    server = FakeUpstream()
    with serve(server.app) as url:
        yield server, url


def make(
    cls: type[HTTPUpstream], url: str, monkeypatch: pytest.MonkeyPatch, first_byte: float = 5
) -> HTTPUpstream:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", KEY)
    config = Upstream.model_validate(
        {
            "name": "up",
            "dialect": cls.dialect,
            "base_url": url,
            "api_key_env": "FAKE_UPSTREAM_KEY",
            "locality": "hosted",
            "timeouts": {"connect": 1, "first_byte": first_byte, "total": 5, "stream_idle": 5},
        }
    )
    return cls(config, Transport(connect=1, read=5))


@pytest.fixture
def scripted(
    fake: tuple[FakeUpstream, str],
) -> Iterator[FakeUpstream]:
    server, _ = fake
    server.requests.clear()
    yield server


REQUEST = c.ChatRequest(
    "alias",
    [c.Message("user", [c.Text("Hi")])],
    system=[c.Text("Be brief.")],
    sampling=c.Sampling(max_tokens=20, stop=["END"]),
)


async def events_of(client: HTTPUpstream, req: c.ChatRequest, model: str) -> list[Any]:
    stream = await client.stream(req, model)
    try:
        return [e async for e in stream]
    finally:
        await stream.aclose()


async def body_of(result: RawResponse | RawStream) -> bytes:
    if isinstance(result, RawResponse):
        return result.body
    rest: AsyncIterator[bytes] = result.rest
    out = result.first + b"".join([chunk async for chunk in rest])
    await result.aclose()
    return out


# ---- Anthropic -------------------------------------------------------------------------------


async def test_anthropic_complete(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(AnthropicClient, fake[1] + "/v1", monkeypatch)
    scripted.script(
        Reply.json(
            f.anthropic_message("Hi there", stop_reason="stop_sequence", stop_sequence="END")
        )
    )
    resp = await client.complete(REQUEST, "claude-x")
    await client.aclose()

    assert resp.blocks == [c.Text("Hi there")]
    assert resp.stop == c.Stop(c.StopReason.STOP_SEQUENCE, "END")
    assert resp.usage == c.Usage(11, 3, 0)
    [sent] = scripted.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json() == {
        "model": "claude-x",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"],
    }


async def test_anthropic_stream(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(AnthropicClient, fake[1] + "/v1", monkeypatch)
    uses = [("toolu_1", "f", ['{"a":', "1}"])]
    scripted.script(Reply.sse(f.anthropic_stream(("Hi",), stop_reason="tool_use", tool_uses=uses)))
    events = await events_of(client, REQUEST, "claude-x")
    await client.aclose()

    assert scripted.requests[0].json()["stream"] is True
    assert events == [
        c.Start("msg_fake123", "claude-upstream", 11),
        c.BlockStart(0, "text"),
        c.TextDelta(0, "Hi"),
        c.BlockStop(0),
        c.BlockStart(1, "tool_call", "toolu_1", "f"),
        c.ToolArgsDelta(1, '{"a":'),
        c.ToolArgsDelta(1, "1}"),
        c.BlockStop(1),
        c.Finish(c.Stop(c.StopReason.TOOL_USE), c.Usage(11, 3, 0)),
    ]


async def test_anthropic_forward_keeps_unknown_fields_and_rewrites_only_the_model(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(AnthropicClient, fake[1] + "/v1", monkeypatch)
    parsed = {"model": "alias", "max_tokens": 5, "messages": [], "thinking": {"type": "enabled"}}
    upstream_body = json.dumps(f.anthropic_message()).encode()
    scripted.script(Reply.json(upstream_body))

    result = await client.forward(RawCall("/messages", b"{}", parsed, False), "claude-x")

    assert isinstance(result, RawResponse)
    assert result.body == upstream_body
    assert result.usage == c.Usage(11, 3, 0)
    assert scripted.requests[0].json() == {**parsed, "model": "claude-x"}

    frames = f.anthropic_stream()
    scripted.script(Reply.sse(frames))
    raw = json.dumps({**parsed, "model": "claude-x", "stream": True}).encode()
    call = RawCall("/messages", raw, json.loads(raw), True)
    streamed = await client.forward(call, "claude-x")
    assert await body_of(streamed) == b"".join(frames)
    assert scripted.requests[1].body == raw  # same model: the client's bytes, untouched
    await client.aclose()


async def test_anthropic_count_tokens(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(AnthropicClient, fake[1] + "/v1", monkeypatch)
    scripted.script(Reply.json({"input_tokens": 17}))
    assert await client.count_tokens(REQUEST, "claude-x") == 17
    await client.aclose()
    [sent] = scripted.requests
    assert sent.path == "/v1/messages/count_tokens"
    assert set(sent.json()) == {"model", "messages", "system"}


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (f.anthropic_error(529, "Overloaded", "overloaded_error"), Overloaded, None),
        (
            Reply.json(
                {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                429,
                headers={"retry-after": "3"},
            ),
            RateLimited,
            3.0,
        ),
        (
            f.anthropic_error(400, "prompt is too long: 300000 tokens > 200000"),
            ContextWindowExceeded,
            None,
        ),
        (f.anthropic_error(500, "boom", "api_error"), UpstreamError, None),
    ],
)
async def test_anthropic_errors_map_into_the_hierarchy(
    scripted: FakeUpstream,
    fake: tuple[FakeUpstream, str],
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    client = make(AnthropicClient, fake[1] + "/v1", monkeypatch)
    scripted.script(reply)
    with pytest.raises(error) as caught:
        await client.complete(REQUEST, "claude-x")
    await client.aclose()
    assert getattr(caught.value, "retry_after", None) == retry_after
    assert getattr(caught.value, "upstream", None) == "up"


# ---- Gemini ----------------------------------------------------------------------------------


async def test_gemini_complete_and_stream(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch)
    scripted.script(Reply.json(f.gemini_response("Hi!", finish_reason="MAX_TOKENS")))
    resp = await client.complete(REQUEST, "gemini-x")
    assert (resp.blocks, resp.stop.reason) == ([c.Text("Hi!")], c.StopReason.MAX_TOKENS)
    assert resp.usage == c.Usage(11, 3, 0)

    scripted.script(Reply.sse(f.gemini_stream(("A", "B"))))
    events = await events_of(client, REQUEST, "gemini-x")
    await client.aclose()

    first, second = scripted.requests
    assert first.path == "/v1beta/models/gemini-x:generateContent"
    assert second.path == "/v1beta/models/gemini-x:streamGenerateContent"
    for sent in (first, second):
        assert sent.headers["x-goog-api-key"] == KEY
        assert "authorization" not in sent.headers
        assert sent.json()["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert sent.json()["generationConfig"] == {"maxOutputTokens": 20, "stopSequences": ["END"]}
    assert events == [
        c.Start("resp_fake123", "gemini-upstream", 11),
        c.BlockStart(0, "text"),
        c.TextDelta(0, "A"),
        c.TextDelta(0, "B"),
        c.BlockStop(0),
        c.Finish(c.Stop(c.StopReason.END_TURN), c.Usage(11, 3, 0)),
    ]


async def test_gemini_stream_without_a_finish_reason_fails(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch)
    scripted.script(Reply.sse(f.gemini_stream(("A", "B"))[:2]))
    events = await events_of(client, REQUEST, "gemini-x")
    await client.aclose()
    assert isinstance(events[-1], c.Failure)
    assert "finishReason" in str(events[-1].error)


async def test_gemini_forward_puts_the_target_model_in_the_path(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch)
    raw = b'{"contents":[{"parts":[{"text":"Hi"}]}],"futureField":{"x":1}}'
    frames = f.gemini_stream()
    scripted.script(Reply.sse(frames))
    call = RawCall("/models/alias:streamGenerateContent", raw, json.loads(raw), True, "alt=sse")

    result = await client.forward(call, "gemini-x")

    assert await body_of(result) == b"".join(frames)
    [sent] = scripted.requests
    assert sent.path == "/v1beta/models/gemini-x:streamGenerateContent"
    assert sent.body == raw
    await client.aclose()


async def test_gemini_count_tokens_sends_a_whole_request(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch)
    scripted.script(Reply.json({"totalTokens": 9}))
    assert await client.count_tokens(REQUEST, "gemini-x") == 9
    await client.aclose()
    [sent] = scripted.requests
    assert sent.path == "/v1beta/models/gemini-x:countTokens"
    inner = sent.json()["generateContentRequest"]
    assert inner["model"] == "models/gemini-x"
    assert inner["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        (f.gemini_error(503, "The model is overloaded."), UpstreamError, 503),
        (f.gemini_error(429, "Quota exceeded"), RateLimited, 429),
        (
            f.gemini_error(400, "The input token count exceeds the maximum number of tokens"),
            ContextWindowExceeded,
            400,
        ),
    ],
)
async def test_gemini_errors_map_into_the_hierarchy(
    scripted: FakeUpstream,
    fake: tuple[FakeUpstream, str],
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    error: type[Exception],
    status: int,
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch)
    scripted.script(reply)
    with pytest.raises(error) as caught:
        await client.complete(REQUEST, "gemini-x")
    await client.aclose()
    assert getattr(caught.value, "status", None) == status


async def test_no_first_byte_in_time_is_a_timeout(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(GeminiClient, fake[1] + "/v1beta", monkeypatch, first_byte=0.2)
    scripted.script(Reply.json(f.gemini_response(), delay=1.0))
    with pytest.raises(UpstreamTimeout):
        await client.complete(REQUEST, "gemini-x")
    await client.aclose()


# ---- vLLM token counting ---------------------------------------------------------------------


async def test_vllm_counts_with_its_tokenize_endpoint_at_the_root(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(OpenAICompatClient, fake[1] + "/v1", monkeypatch)
    scripted.script(Reply.json({"count": 42, "max_model_len": 2048, "tokens": [1] * 42}))
    tool = c.Tool("f", None, {"type": "object"})
    req = c.ChatRequest(REQUEST.model, REQUEST.messages, REQUEST.system, tools=[tool])
    assert await client.count_tokens(req, "smol") == 42
    await client.aclose()
    [sent] = scripted.requests
    assert sent.path == "/tokenize"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {
        "model": "smol",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
    }


async def test_a_tokenize_answer_without_a_count_is_an_upstream_error(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make(OpenAICompatClient, fake[1] + "/v1", monkeypatch)
    scripted.script(Reply.json({"tokens": []}))
    with pytest.raises(UpstreamError, match="count"):
        await client.count_tokens(REQUEST, "smol")
    await client.aclose()


async def test_a_forwarded_stream_closed_before_its_rest_frees_the_upstreams_slot(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that leaves right after the first token: the relay closes the stream without
    reading on, and the slot it held must come back or the upstream fills up for good."""
    client = make(OpenAICompatClient, fake[1] + "/v1", monkeypatch)
    scripted.script(Reply.sse(f.chat_stream()))
    raw = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    call = RawCall("/chat/completions", raw, json.loads(raw), True)
    for _ in range(2):
        streamed = await client.forward(call, "m")
        assert isinstance(streamed, RawStream)
        assert client.gate.total == 1
        await streamed.aclose()
        assert client.gate.total == 0
    await client.aclose()


async def test_a_forwarded_stream_is_spent_only_once_read_to_its_end(
    scripted: FakeUpstream, fake: tuple[FakeUpstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`spent` lets the relay skip its shielded close: true only when nothing is left open
    (the rest read to its end, the slot and the connection back), never for a stream whose
    rest has not started or has not ended."""
    client = make(OpenAICompatClient, fake[1] + "/v1", monkeypatch)
    scripted.script(Reply.sse(f.chat_stream()))
    raw = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    call = RawCall("/chat/completions", raw, json.loads(raw), True)

    streamed = await client.forward(call, "m")
    assert isinstance(streamed, RawStream)
    assert not streamed.spent  # the rest has not started: the slot is still held
    rest: AsyncIterator[bytes] = streamed.rest
    read = [await anext(rest)]
    assert not streamed.spent  # part-way
    read += [chunk async for chunk in rest]
    assert b"[DONE]" in streamed.first + b"".join(read)
    assert streamed.spent
    assert client.gate.total == 0

    unread = await client.forward(call, "m")
    assert isinstance(unread, RawStream)
    await unread.aclose()  # the relay's close of a stream it did not read to its end
    assert unread.spent
    assert client.gate.total == 0
    await client.aclose()
