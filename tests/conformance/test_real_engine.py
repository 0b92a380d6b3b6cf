"""The official SDKs (OpenAI, Anthropic, Gemini) → the gateway → the real vLLM CPU engine
with the embedded SmolLM2 model.

One engine per session (the `engine` fixture in tests/conftest.py starts it with `serving
launch`); one gateway per module in front of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import cast

import anthropic
import openai
import pytest
from anthropic.types import ContentBlockParam, MessageParam, ToolParam
from google import genai
from google.genai import types
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.servers import serve

pytestmark = pytest.mark.engine

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]
A_QUESTION: list[MessageParam] = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def gateway_url(engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings = parse_settings(
        {
            "upstreams": [
                {
                    "name": "embedded",
                    "base_url": engine.base_url,
                    "timeouts": {"first_byte": 120, "total": 300},
                }
            ],
            "routes": [
                {
                    "model": "smollm2",
                    "aliases": ["default"],
                    "targets": [{"upstream": "embedded", "model": engine.served_model}],
                }
            ],
        }
    )
    with serve(create_app(settings)) as url:
        yield url


def anthropic_client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="local", max_retries=0, timeout=300)


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)


def test_openai_sdk_answers(gateway_url: str) -> None:
    out = openai_client(gateway_url).chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        max_tokens=32,
        temperature=0,
    )
    assert "Paris" in (out.choices[0].message.content or "")
    assert out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens > 5


def test_openai_sdk_streams(gateway_url: str) -> None:
    chunks = list(
        openai_client(gateway_url).chat.completions.create(
            model="default",
            messages=QUESTION,
            max_tokens=32,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_anthropic_sdk_answers(gateway_url: str) -> None:
    msg = anthropic_client(gateway_url).messages.create(
        model="smollm2",
        max_tokens=32,
        messages=A_QUESTION,
        extra_body=GREEDY,
    )
    assert msg.content[0].type == "text" and "Paris" in msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 5 and msg.usage.output_tokens > 0


def test_anthropic_sdk_streams_in_order(gateway_url: str) -> None:
    client = anthropic_client(gateway_url)
    plain = client.messages.create(
        model="smollm2",
        max_tokens=32,
        messages=A_QUESTION,
        extra_body=GREEDY,
    )
    with client.messages.stream(
        model="smollm2",
        max_tokens=32,
        messages=A_QUESTION,
        extra_body=GREEDY,
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert [e.index for e in events if e.type == "content_block_start"] == [0]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.output_tokens == final.usage.output_tokens > 0
    assert "Paris" in final.content[0].text  # type: ignore[union-attr]
    assert final.content[0].text == plain.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason
    assert final.usage.input_tokens == plain.usage.input_tokens


def test_anthropic_stop_sequence_from_the_engine(gateway_url: str) -> None:
    msg = anthropic_client(gateway_url).messages.create(
        model="smollm2",
        max_tokens=32,
        messages=A_QUESTION,
        stop_sequences=["Paris"],
        extra_body=GREEDY,
    )
    assert msg.stop_reason == "stop_sequence"
    assert msg.stop_sequence == "Paris"
    assert "Paris" not in msg.content[0].text  # type: ignore[union-attr]


def test_unknown_model_through_the_engine_route(gateway_url: str) -> None:
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(gateway_url).messages.create(
            model="no-such-model",
            max_tokens=8,
            messages=A_QUESTION,
        )


# ---- tool calling on the embedded engine (Hermes template + parser, structured output) -------

TOOL_NAME = "get_weather"
TOOL_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_TEXT = "What is the weather in Paris? Use the tool."
WEATHER: list[ChatCompletionMessageParam] = [{"role": "user", "content": WEATHER_TEXT}]
A_WEATHER: list[MessageParam] = [{"role": "user", "content": WEATHER_TEXT}]
TOOL_RESULT = "Sunny, 24 degrees Celsius."


def test_openai_forced_tool_call_round_trip(gateway_url: str) -> None:
    client = openai_client(gateway_url)
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": TOOL_NAME, "parameters": TOOL_SCHEMA}}
    ]
    first = client.chat.completions.create(
        model="smollm2",
        messages=WEATHER,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": TOOL_NAME}},
        max_tokens=64,
        temperature=0,
    )
    calls = first.choices[0].message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == TOOL_NAME and calls[0].id
    arguments = json.loads(calls[0].function.arguments)
    assert isinstance(arguments, dict)
    second = client.chat.completions.create(
        model="smollm2",
        messages=[
            *WEATHER,
            # the SDK's response model dumps to the shape of its assistant-message param
            cast(
                ChatCompletionAssistantMessageParam,
                first.choices[0].message.model_dump(exclude_none=True),
            ),
            {"role": "tool", "tool_call_id": calls[0].id, "content": TOOL_RESULT},
        ],
        tools=tools,
        max_tokens=32,
        temperature=0,
    )
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason in ("stop", "length")
    assert first.usage is not None
    assert second.usage is not None and second.usage.prompt_tokens > first.usage.prompt_tokens


def test_openai_tool_choice_auto_is_accepted(gateway_url: str) -> None:
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": TOOL_NAME, "parameters": TOOL_SCHEMA}}
    ]
    reply = openai_client(gateway_url).chat.completions.create(
        model="smollm2",
        messages=WEATHER,
        tools=tools,
        tool_choice="auto",
        max_tokens=16,
        temperature=0,
    )
    choice = reply.choices[0]
    # A 135M model may answer or call; either way a well-formed completion, not a 400.
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls


def test_anthropic_forced_tool_use_round_trip(gateway_url: str) -> None:
    client = anthropic_client(gateway_url)
    tools: list[ToolParam] = [
        {"name": TOOL_NAME, "description": "Weather now", "input_schema": TOOL_SCHEMA}
    ]
    first = client.messages.create(
        model="smollm2",
        max_tokens=64,
        messages=A_WEATHER,
        tools=tools,
        tool_choice={"type": "tool", "name": TOOL_NAME},
        extra_body=GREEDY,
    )
    uses = [block for block in first.content if block.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == TOOL_NAME and uses[0].id
    assert isinstance(uses[0].input, dict)
    assert first.stop_reason == "tool_use"
    second = client.messages.create(
        model="smollm2",
        max_tokens=32,
        messages=[
            *A_WEATHER,
            {
                "role": "assistant",
                # response blocks dumped to dicts: the shape of their request params
                "content": cast(
                    list[ContentBlockParam], [block.model_dump() for block in first.content]
                ),
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": TOOL_RESULT}
                ],
            },
        ],
        tools=tools,
        extra_body=GREEDY,
    )
    assert second.stop_reason in ("end_turn", "max_tokens")
    texts = [block.text for block in second.content if block.type == "text"]
    assert texts and texts[0]


def test_gemini_forced_function_call_round_trip(gateway_url: str) -> None:
    client = genai.Client(api_key="local", http_options=types.HttpOptions(base_url=gateway_url))
    declaration = types.FunctionDeclaration(
        name=TOOL_NAME, description="Weather now", parameters_json_schema=TOOL_SCHEMA
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=[TOOL_NAME]
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        temperature=0,
        max_output_tokens=64,
    )
    question = types.Content(role="user", parts=[types.Part(text=WEATHER_TEXT)])
    first = client.models.generate_content(model="smollm2", contents=[question], config=config)
    assert first.candidates and first.candidates[0].content
    calls = [p.function_call for p in first.candidates[0].content.parts or [] if p.function_call]
    assert len(calls) == 1 and calls[0].name == TOOL_NAME
    assert isinstance(calls[0].args, dict)
    answer_config = types.GenerateContentConfig(
        tools=config.tools,
        automatic_function_calling=config.automatic_function_calling,
        temperature=0,
        max_output_tokens=32,
    )
    reply = types.FunctionResponse(name=TOOL_NAME, response={"result": TOOL_RESULT})
    second = client.models.generate_content(
        model="smollm2",
        contents=[
            question,
            types.Content(role="model", parts=[types.Part(function_call=calls[0])]),
            types.Content(role="user", parts=[types.Part(function_response=reply)]),
        ],
        config=answer_config,
    )
    assert second.text
    assert second.candidates and second.candidates[0].finish_reason in (
        types.FinishReason.STOP,
        types.FinishReason.MAX_TOKENS,
    )
