"""The official `anthropic` SDK against the gateway, with a scripted OpenAI-compatible upstream.

The Anthropic request is translated by the gateway into Chat Completions and back.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest
from anthropic.types import Message, MessageParam, ToolParam

from tests.support.fake_upstream import Reply, chat_completion, chat_stream, openai_error
from tests.support.gateway_fixtures import GatewayUnderTest

USER: list[MessageParam] = [{"role": "user", "content": "What is the capital of France?"}]


def client(gw: GatewayUnderTest) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="test-key", max_retries=0)


def test_create_translates_both_ways(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(
        Reply.json(chat_completion("Paris.", prompt_tokens=21, completion_tokens=3))
    )
    msg = client(gateway).messages.create(
        model="smollm2",
        max_tokens=32,
        system="Be terse.",
        messages=USER,
        extra_body={"temperature": 0.3},  # the newest SDK has no temperature argument
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "Paris."  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (21, 3)
    sent = gateway.upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.json() == {
        "model": "upstream-model",
        "messages": [{"role": "system", "content": "Be terse."}, *USER],
        "max_tokens": 32,
        "temperature": 0.3,
    }


def test_stop_sequence_is_reported(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("Paris", stop_reason="END")))
    msg = client(gateway).messages.create(
        model="smollm2", max_tokens=32, messages=USER, stop_sequences=["END"]
    )
    assert msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "END"
    assert gateway.upstream.requests[-1].json()["stop"] == ["END"]


def test_stream_event_order_and_accumulated_message(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("Hello!", completion_tokens=3)))
    plain = client(gateway).messages.create(model="smollm2", max_tokens=32, messages=USER)
    gateway.upstream.script(Reply.sse(chat_stream(("Hel", "lo", "!"))))
    with client(gateway).messages.stream(model="smollm2", max_tokens=32, messages=USER) as stream:
        events = list(stream)
        final = stream.get_final_message()
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert types.count("message_delta") == 1
    starts = [e.index for e in events if e.type == "content_block_start"]
    assert starts == list(range(len(starts))) == [0]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.output_tokens == 3  # cumulative, not per event
    assert final.content[0].text == "Hello!"  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason == "end_turn"
    assert [b.type for b in final.content] == [b.type for b in plain.content]
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens == 11
    # A local (vLLM) upstream is asked for usage in every chunk: message_start's input tokens.
    assert gateway.upstream.requests[-1].json()["stream_options"] == {
        "include_usage": True,
        "continuous_usage_stats": True,
    }


def test_stream_with_stop_sequence(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.sse(chat_stream(("Par", "is"), stop_reason="END")))
    with client(gateway).messages.stream(
        model="smollm2", max_tokens=32, messages=USER, stop_sequences=["END"]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "END"


def test_tool_use_round_trip(gateway: GatewayUnderTest) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    gateway.upstream.script(
        Reply.json(chat_completion(None, finish_reason="tool_calls", tool_calls=[call]))
    )
    tools: list[ToolParam] = [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    msg = client(gateway).messages.create(
        model="smollm2",
        max_tokens=64,
        messages=USER,
        tools=tools,
    )
    assert msg.stop_reason == "tool_use"
    block = msg.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"} and block.id == "call_1"
    gateway.upstream.script(Reply.json(chat_completion("It is 18C.")))
    history: list[MessageParam] = [
        *USER,
        {"role": "assistant", "content": msg.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18C"}],
        },
    ]
    answer = client(gateway).messages.create(
        model="smollm2",
        max_tokens=64,
        messages=history,
        tools=tools,
    )
    assert answer.content[0].text == "It is 18C."  # type: ignore[union-attr]
    sent = gateway.upstream.requests[-1].json()["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18C"}


def test_streamed_tool_call_arguments_arrive_whole(gateway: GatewayUnderTest) -> None:
    frames = chat_stream(
        (),
        finish_reason="tool_calls",
        tool_calls=[("call_2", "get_weather", ['{"ci', 'ty": "Rome"}'])],
    )
    gateway.upstream.script(Reply.sse(frames))
    with client(gateway).messages.stream(model="smollm2", max_tokens=64, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == {"city": "Rome"}


def test_missing_max_tokens_is_an_anthropic_400(gateway: GatewayUnderTest) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        # the SDK checks its own required arguments, so send the body through its transport
        client(gateway).post(
            "/v1/messages", body={"model": "smollm2", "messages": USER}, cast_to=Message
        )
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.response.headers["request-id"].startswith("req_")
    assert gateway.upstream.requests == []


def test_unknown_model_is_not_found_error(gateway: GatewayUnderTest) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(gateway).messages.create(model="nope", max_tokens=8, messages=USER)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "nope" in info.value.message


def test_unreachable_upstream_is_a_5xx_in_anthropic_envelope(gateway: GatewayUnderTest) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client(gateway).messages.create(model="unreachable", max_tokens=8, messages=USER)
    assert info.value.status_code == 503
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert "cannot connect" in info.value.message


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        # the upstream refused the gateway's own key: a 502 naming it, not the client's 401
        (401, anthropic.InternalServerError, "api_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_upstream_errors_map_to_sdk_classes(
    gateway: GatewayUnderTest, status: int, error_class: type[Exception], error_type: str
) -> None:
    gateway.upstream.script(openai_error(status, f"upstream said {status}"))
    with pytest.raises(error_class) as info:
        client(gateway).messages.create(model="smollm2", max_tokens=8, messages=USER)
    assert info.value.body["error"]["type"] == error_type  # type: ignore[attr-defined]
    if status == 400:  # the client's fault: the upstream's words say what to fix
        assert f"upstream said {status}" in str(info.value)
    else:  # the upstream's business with the gateway: the gateway's own words, never its text
        assert "upstream said" not in str(info.value)
        assert "upstream 'fake'" in str(info.value)


def test_mid_stream_cut_reaches_client_as_error(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.sse(chat_stream(("Hel", "lo", "!")), cut_after=3))
    with pytest.raises(anthropic.APIStatusError) as info:  # noqa: SIM117
        with client(gateway).messages.stream(model="smollm2", max_tokens=8, messages=USER) as s:
            for _ in s:
                pass
    assert "stream" in str(info.value)


def test_invalid_json_body_is_an_anthropic_400(gateway: GatewayUnderTest) -> None:
    response = httpx.post(
        gateway.url + "/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_fallback_moves_past_a_dead_target(gateway: GatewayUnderTest) -> None:
    gateway.upstream.script(Reply.json(chat_completion("from the second target")))
    raw = client(gateway).messages.with_raw_response.create(
        model="with-fallback", max_tokens=8, messages=USER
    )
    msg = raw.parse()
    assert msg.content[0].text == "from the second target"  # type: ignore[union-attr]
    assert raw.headers["x-serving-target"] == "fake/upstream-model"
    assert raw.headers["x-serving-fallback"] == "dead/m:connect"
