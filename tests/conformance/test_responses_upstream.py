"""A `responses` upstream (a target that speaks only the Responses API) serving other dialects'
clients through the canonical model: the official openai (Chat Completions) and anthropic SDKs,
whole and streamed, with tool calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.responses_gateway import hosted_response, hosted_stream, sse
from tests.support.servers import serve


@pytest.fixture(scope="module")
def gw() -> Iterator[tuple[str, FakeUpstream]]:
    fake = FakeUpstream()
    with serve(fake.app) as upstream:
        settings = parse_settings(
            {
                "upstreams": [
                    {"name": "resp", "dialect": "responses", "base_url": upstream + "/v1"}
                ],
                "routes": [{"model": "m", "targets": [{"upstream": "resp", "model": "gpt-r"}]}],
                "privacy": {"detect": False},
            }
        )
        with serve(create_app(settings)) as url:
            yield url, fake


def tool_response() -> dict[str, Any]:
    body = hosted_response("", "resp_tool")
    body["output"] = [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_r1",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
    ]
    return body


def test_chat_client_gets_a_translated_answer(gw: tuple[str, FakeUpstream]) -> None:
    url, fake = gw
    fake.script(Reply.json(hosted_response("Bonjour")))
    c = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    out = c.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": "Be nice"}, {"role": "user", "content": "Hi"}],
        max_tokens=9,
    )
    assert out.choices[0].message.content == "Bonjour"
    assert out.usage is not None and out.usage.prompt_tokens == 5
    assert fake.requests[-1].path == "/v1/responses"
    assert fake.requests[-1].json() == {
        "model": "gpt-r",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
        ],
        "store": False,
        "instructions": "Be nice",
        "max_output_tokens": 9,
    }


def test_chat_client_gets_tool_calls(gw: tuple[str, FakeUpstream]) -> None:
    url, fake = gw
    fake.script(Reply.json(tool_response()))
    c = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    out = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Oslo?"}])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (  # type: ignore[union-attr]
        "call_r1",
        "get_weather",
        '{"city":"Oslo"}',
    )


def test_anthropic_client_streams_from_a_responses_upstream(gw: tuple[str, FakeUpstream]) -> None:
    url, fake = gw
    fake.script(Reply.sse(hosted_stream("Hej")))
    c = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    with c.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
    ) as s:
        final = s.get_final_message()
    assert final.content[0].text == "Hej"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 2)
    assert fake.requests[-1].json()["stream"] is True


def test_a_failed_upstream_stream_ends_the_client_stream_with_an_error(
    gw: tuple[str, FakeUpstream],
) -> None:
    url, fake = gw
    frames = hosted_stream("Hej")[:5] + sse(
        [{"type": "response.failed", "response": {"error": {"message": "engine exploded"}}}]
    )
    fake.script(Reply.sse(frames))
    c = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
    stream = c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "engine exploded" in info.value.message
