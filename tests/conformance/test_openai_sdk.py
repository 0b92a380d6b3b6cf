"""The official `openai` SDK against the gateway, with a scripted OpenAI-compatible upstream.

Same dialect on both sides: bodies pass through untouched, streams are relayed as they come.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.fake_upstream import Reply, chat_completion, chat_stream, openai_error
from tests.support.gateway_fixtures import GatewayUnderTest

USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def client(gw: GatewayUnderTest) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="test-key", max_retries=0)


def test_body_passes_through_untouched(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("Paris.", prompt_tokens=9)))
    out = client(gateway).chat.completions.create(
        model="smollm2",
        messages=USER,
        max_tokens=16,
        extra_body={"vendor_flag": {"keep": True}},
    )
    assert out.choices[0].message.content == "Paris."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.prompt_tokens == 9
    sent = gateway.upstream.requests[-1].json()
    assert sent["vendor_flag"] == {"keep": True}  # unknown fields preserved
    assert sent["model"] == "upstream-model"  # the route's target model


def test_identical_model_sends_the_original_bytes(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("ok")))
    body = b'{"model": "same-name",   "messages": [{"role": "user", "content": "hi"}], "x": 1}'
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    assert gateway.upstream.requests[-1].body == body


def test_alias_routes_to_the_same_target(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("ok")))
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="default",
        messages=USER,
    )
    assert raw.headers["x-serving-target"] == "fake/upstream-model"
    assert raw.parse().choices[0].message.content == "ok"


def test_stream_relays_chunks_and_usage(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.sse(chat_stream(("Hel", "lo", "!"), prompt_tokens=7)))
    chunks = list(
        client(gateway).chat.completions.create(
            model="smollm2",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 7


def test_streamed_tool_calls_by_index(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(
        (),
        finish_reason="tool_calls",
        tool_calls=[("call_a", "f", ['{"x"', ": 1}"]), ("call_b", "g", ["{}"])],
    )
    gateway.upstream.script(Reply.sse(frames))
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    for chunk in client(gateway).chat.completions.create(
        model="smollm2",
        messages=USER,
        stream=True,
    ):
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.function and call.function.name:
                names[call.index] = call.function.name
            args[call.index] = args.get(call.index, "") + (call.function.arguments or "")  # type: ignore[union-attr]
    assert names == {0: "f", 1: "g"}
    assert args == {0: '{"x": 1}', 1: "{}"}


def test_unknown_model_is_not_found(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client(gateway).chat.completions.create(model="nope", messages=USER)
    assert info.value.code == "model_not_found"
    assert "nope" in info.value.message


def test_missing_messages_is_a_400_in_openai_envelope(gateway: GatewayUnderTest) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "smollm2"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    assert "messages" in error["message"]


def test_upstream_400_is_relayed_as_bad_request(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(openai_error(400, "temperature must be <= 2"))
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(model="smollm2", messages=USER)
    assert "temperature must be <= 2" in info.value.message


def test_unreachable_upstream_is_a_503(gateway: GatewayUnderTest) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client(gateway).chat.completions.create(model="unreachable", messages=USER)
    assert info.value.status_code == 503
    assert "cannot connect" in info.value.message


def test_mid_stream_cut_raises_in_the_sdk(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.sse(chat_stream(("a", "b", "c")), cut_after=2))
    stream = client(gateway).chat.completions.create(
        model="smollm2",
        messages=USER,
        stream=True,
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "stream" in info.value.message


def test_models_lists_routes_and_aliases(gateway: GatewayUnderTest) -> None:
    ids = [m.id for m in client(gateway).models.list()]
    assert ids == ["smollm2", "default", "same-name", "unreachable", "with-fallback"]
