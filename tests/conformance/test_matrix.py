"""The 3-by-3 matrix with the official Python SDKs as clients: every client dialect against every
upstream dialect, streamed and not, for a plain answer and a whole tool round trip (the call,
its result, the final answer). Same-dialect cells go through the pass-through path, the others
through the canonical model; the assertions are the same, on the SDKs' own objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.support.matrix import (
    CLIENT_KEY,
    DIALECTS,
    EXPECTED_AUTH,
    FINAL_TEXT,
    TOOL_ARGS,
    TOOL_NAME,
    TOOL_RESULT,
    TOOL_SCHEMA,
    UPSTREAM_CALL_IDS,
    Matrix,
    auth_header,
    expected_tool_turn,
    final_reply,
    matrix_gateway,
    sent_tool_turn,
    text_reply,
    tool_reply,
)

QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    with matrix_gateway() as m:
        yield m


@dataclass
class Turn:
    """One answer, read off the SDK's objects."""

    text: str
    stop: str
    calls: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


# ---- OpenAI --------------------------------------------------------------------------------


def _openai_turn(url: str, model: str, messages: list[Any], stream: bool) -> Turn:
    client = openai.OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0)
    tool = {"type": "function", "function": {"name": TOOL_NAME, "parameters": TOOL_SCHEMA}}
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "tools": [tool],
        "extra_body": {"x_unknown_field": "kept"},
    }
    if not stream:
        r = client.chat.completions.create(**kwargs)
        choice = r.choices[0]
        calls = [
            (c.id, c.function.name, json.loads(c.function.arguments))
            for c in choice.message.tool_calls or []
            if c.type == "function"
        ]
        assert r.usage is not None
        return Turn(
            choice.message.content or "",
            choice.finish_reason,
            calls,
            r.usage.prompt_tokens,
            r.usage.completion_tokens,
        )
    turn = Turn("", "")
    parts: dict[int, list[str]] = {}
    for chunk in client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    ):
        if chunk.usage is not None:
            assert not chunk.choices  # the usage chunk comes alone, before [DONE]
            turn.input_tokens = chunk.usage.prompt_tokens
            turn.output_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            turn.text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                if call.id:
                    assert call.function is not None
                    parts[call.index] = [call.id, call.function.name or ""]
                elif call.function and call.function.arguments:
                    parts[call.index].append(call.function.arguments)
            turn.stop = choice.finish_reason or turn.stop
    turn.calls = [(p[0], p[1], json.loads("".join(p[2:]))) for _, p in sorted(parts.items())]
    return turn


def openai_conversation(url: str, model: str, stream: bool) -> tuple[Turn, Turn]:
    question = [{"role": "user", "content": QUESTION}]
    call = _openai_turn(url, model, question, stream)
    call_id, name, args = call.calls[0]
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }
    result = {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT}
    return call, _openai_turn(url, model, [*question, assistant, result], stream)


# ---- Anthropic -------------------------------------------------------------------------------


def _anthropic_turn(url: str, model: str, messages: list[Any], stream: bool) -> Turn:
    client = anthropic.Anthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0)
    tool = {"name": TOOL_NAME, "description": "Weather now", "input_schema": TOOL_SCHEMA}
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 200,
        "messages": messages,
        "tools": [tool],
        "extra_body": {"x_unknown_field": "kept"},
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    text = "".join(b.text for b in message.content if b.type == "text")
    calls: list[tuple[str | None, str, dict[str, Any]]] = [
        (b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"
    ]
    u = message.usage
    return Turn(text, message.stop_reason or "", calls, u.input_tokens, u.output_tokens)


def anthropic_conversation(url: str, model: str, stream: bool) -> tuple[Turn, Turn]:
    question = {"role": "user", "content": QUESTION}
    call = _anthropic_turn(url, model, [question], stream)
    call_id, name, args = call.calls[0]
    use = {"type": "tool_use", "id": call_id, "name": name, "input": args}
    result = {"type": "tool_result", "tool_use_id": call_id, "content": TOOL_RESULT}
    history = [question, {"role": "assistant", "content": [use]}]
    return call, _anthropic_turn(
        url, model, [*history, {"role": "user", "content": [result]}], stream
    )


# ---- Gemini ----------------------------------------------------------------------------------


def _gemini_turn(url: str, model: str, contents: list[types.Content], stream: bool) -> Turn:
    # v1beta as in Google's API reference (google-genai itself defaults to v1; the error and
    # endpoint tests use that default, so both path variants are exercised).
    options = types.HttpOptions(
        base_url=url, api_version="v1beta", extra_body={"x_unknown_field": "kept"}
    )
    client = genai.Client(api_key=CLIENT_KEY, http_options=options)
    declaration = types.FunctionDeclaration(
        name=TOOL_NAME, description="Weather now", parameters_json_schema=TOOL_SCHEMA
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if stream:
        chunks = list(
            client.models.generate_content_stream(model=model, contents=contents, config=config)
        )
    else:
        chunks = [client.models.generate_content(model=model, contents=contents, config=config)]
    turn = Turn("", "")
    for chunk in chunks:
        assert chunk.candidates
        candidate = chunk.candidates[0]
        for part in (candidate.content.parts if candidate.content else None) or []:
            turn.text += part.text or ""
            if part.function_call:
                fc = part.function_call
                turn.calls.append((fc.id, fc.name or "", dict(fc.args or {})))
        if candidate.finish_reason is not None:
            turn.stop = candidate.finish_reason.value
        if chunk.usage_metadata is not None:
            turn.input_tokens = chunk.usage_metadata.prompt_token_count or 0
            turn.output_tokens = chunk.usage_metadata.candidates_token_count or 0
    return turn


def gemini_conversation(url: str, model: str, stream: bool) -> tuple[Turn, Turn]:
    question = types.Content(role="user", parts=[types.Part(text=QUESTION)])
    call = _gemini_turn(url, model, [question], stream)
    call_id, name, args = call.calls[0]
    model_turn = types.Content(
        role="model",
        parts=[types.Part(function_call=types.FunctionCall(id=call_id, name=name, args=args))],
    )
    # No id on the response: the gateway pairs it with the call by name and order.
    response = types.FunctionResponse(name=name, response={"result": TOOL_RESULT})
    result = types.Content(role="user", parts=[types.Part(function_response=response)])
    return call, _gemini_turn(url, model, [question, model_turn, result], stream)


def gemini_text(url: str, model: str, stream: bool) -> Turn:
    return _gemini_turn(
        url, model, [types.Content(role="user", parts=[types.Part(text="Hi")])], stream
    )


# ---- the matrix ------------------------------------------------------------------------------

Conversation = Callable[[str, str, bool], tuple[Turn, Turn]]
CONVERSATIONS: dict[str, Conversation] = {
    "openai": openai_conversation,
    "anthropic": anthropic_conversation,
    "gemini": gemini_conversation,
}
TEXT_TURNS: dict[str, Callable[[str, str, bool], Turn]] = {
    "openai": lambda u, m, s: _openai_turn(u, m, [{"role": "user", "content": "Hi"}], s),
    "anthropic": lambda u, m, s: _anthropic_turn(u, m, [{"role": "user", "content": "Hi"}], s),
    "gemini": gemini_text,
}
END_TURN = {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP"}
TOOL_USE = {"openai": "tool_calls", "anthropic": "tool_use", "gemini": "STOP"}

CELLS = [
    pytest.param(
        client, upstream, stream, id=f"{client}->{upstream}-{'stream' if stream else 'json'}"
    )
    for client in DIALECTS
    for upstream in DIALECTS
    for stream in (False, True)
]


@pytest.mark.parametrize(("client", "upstream", "stream"), CELLS)
def test_plain_text(matrix: Matrix, client: str, upstream: str, stream: bool) -> None:
    fake = matrix.fakes[upstream]
    fake.script(text_reply(upstream, stream))
    fake.requests.clear()

    turn = TEXT_TURNS[client](matrix.url, f"via-{upstream}", stream)

    assert turn.text == "Hello!"
    assert turn.stop == END_TURN[client]
    assert turn.calls == []
    assert (turn.input_tokens, turn.output_tokens) == (11, 3)
    [sent] = fake.requests
    assert auth_header(upstream, sent.headers) == EXPECTED_AUTH[upstream]
    body = sent.json()
    if upstream != "gemini":
        assert body["model"] == f"{upstream}-upstream-model"
    else:
        assert "/models/gemini-upstream-model:" in sent.path
    # Unknown fields reach a same-dialect upstream untouched, and no other.
    assert ("x_unknown_field" in body) == (client == upstream)


@pytest.mark.parametrize(("client", "upstream", "stream"), CELLS)
def test_tool_round_trip(matrix: Matrix, client: str, upstream: str, stream: bool) -> None:
    fake = matrix.fakes[upstream]
    fake.script(tool_reply(upstream, stream), final_reply(upstream, stream))
    fake.requests.clear()

    call, final = CONVERSATIONS[client](matrix.url, f"via-{upstream}", stream)

    assert call.stop == TOOL_USE[client]
    assert call.text == ""
    [(call_id, name, args)] = call.calls
    assert (name, args) == (TOOL_NAME, TOOL_ARGS)
    upstream_id = UPSTREAM_CALL_IDS[upstream]
    if upstream_id is not None:
        assert call_id == upstream_id  # the upstream's own id reaches the client
    elif client != "gemini":
        assert call_id and call_id.startswith("call_")  # synthesised for Gemini's id-less calls
    assert (call.input_tokens, call.output_tokens) == (11, 3)

    assert final.text == FINAL_TEXT
    assert final.stop == END_TURN[client]
    assert final.calls == []
    assert (final.input_tokens, final.output_tokens) == (11, 3)

    assert len(fake.requests) == 2
    assert sent_tool_turn(upstream, fake.requests[1].json()) == expected_tool_turn(upstream)
