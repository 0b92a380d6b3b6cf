"""The dialect matrix: one gateway in front of three scripted fake upstreams, one per dialect.

Routes `via-openai`, `via-anthropic` and `via-gemini` each lead to one fake; `dead` leads to a
port nobody listens on. The gateway requires `CLIENT_KEY`; each upstream expects `UPSTREAM_KEY`
in its own auth header. Scripts below give each fake the same conversation in its own dialect:
a plain answer, a tool call, and the answer after the tool result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import Settings, parse_settings
from tests.support import fake_upstream as f
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import free_port, serve

DIALECTS = ("openai", "anthropic", "gemini")
CLIENT_KEY = "client-secret"
UPSTREAM_KEY = "upstream-secret"
MAX_BODY = 64 * 1024
TOOL_NAME = "get_weather"
TOOL_ARGS = {"city": "Paris"}
TOOL_RESULT = "sunny, 21C"
FINAL_TEXT = "It is sunny."
UPSTREAM_CALL_IDS = {"openai": "call_up1", "anthropic": "toolu_up1", "gemini": None}
TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
_BASE_PATH = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}


@dataclass
class Matrix:
    url: str
    settings: Settings
    fakes: dict[str, FakeUpstream]


def matrix_settings(urls: dict[str, str], dead_port: int) -> Settings:
    timeouts = {"connect": 1, "first_byte": 5, "total": 10, "stream_idle": 5}
    upstreams: list[dict[str, Any]] = [
        {
            "name": d,
            "dialect": d,
            "base_url": urls[d] + _BASE_PATH[d],
            "locality": "hosted",
            "api_key_env": "MATRIX_UPSTREAM_KEY",
            "timeouts": timeouts,
        }
        for d in DIALECTS
    ]
    upstreams.append({"name": "dead", "base_url": f"http://127.0.0.1:{dead_port}/v1"})
    routes: list[dict[str, Any]] = [
        {"model": f"via-{d}", "targets": [{"upstream": d, "model": f"{d}-upstream-model"}]}
        for d in DIALECTS
    ]
    routes.append({"model": "dead", "targets": [{"upstream": "dead", "model": "m"}]})
    # a chain whose first target cannot take a body that has no canonical form (embeddings)
    routes.append(
        {
            "model": "mixed",
            "targets": [
                {"upstream": "anthropic", "model": "anthropic-upstream-model"},
                {"upstream": "openai", "model": "openai-upstream-model"},
            ],
        }
    )
    server = {"api_keys_env": "MATRIX_CLIENT_KEYS", "max_body_bytes": MAX_BODY}
    # No retries and no breakers: each scripted failure is seen once, and never trips a circuit
    # that would turn the next test's request away.
    policy = {"retry": {"attempts": 0}, "circuit": {"enabled": False}}
    data = {"server": server, "policy": policy, "upstreams": upstreams, "routes": routes}
    return parse_settings(data, "matrix")


@contextmanager
def matrix_gateway() -> Iterator[Matrix]:
    fakes = {d: FakeUpstream() for d in DIALECTS}
    with ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        env.setenv("MATRIX_CLIENT_KEYS", CLIENT_KEY)
        env.setenv("MATRIX_UPSTREAM_KEY", UPSTREAM_KEY)
        urls = {d: stack.enter_context(serve(fake.app)) for d, fake in fakes.items()}
        settings = matrix_settings(urls, free_port())
        url = stack.enter_context(serve(create_app(settings)))
        yield Matrix(url, settings, fakes)


# ---- the scripted conversation, in each upstream dialect --------------------------------------


def text_reply(dialect: str, stream: bool) -> Reply:
    """ "Hello!", ended naturally, 11 input and 3 output tokens."""
    if dialect == "openai":
        return Reply.sse(f.chat_stream()) if stream else Reply.json(f.chat_completion())
    if dialect == "anthropic":
        return Reply.sse(f.anthropic_stream()) if stream else Reply.json(f.anthropic_message())
    return Reply.sse(f.gemini_stream()) if stream else Reply.json(f.gemini_response())


def tool_reply(dialect: str, stream: bool) -> Reply:
    """A call of get_weather({"city": "Paris"}), 11 input and 3 output tokens."""
    args = json.dumps(TOOL_ARGS)
    fragments = [args[:5], args[5:12], args[12:]]
    if dialect == "openai":
        if stream:
            calls = [("call_up1", TOOL_NAME, fragments)]
            return Reply.sse(f.chat_stream((), finish_reason="tool_calls", tool_calls=calls))
        call: dict[str, Any] = {"id": "call_up1", "type": "function"}
        call["function"] = {"name": TOOL_NAME, "arguments": args}
        body = f.chat_completion(None, finish_reason="tool_calls", tool_calls=[call])
        return Reply.json(body)
    if dialect == "anthropic":
        if stream:
            uses = [("toolu_up1", TOOL_NAME, ["", *fragments])]
            return Reply.sse(f.anthropic_stream((), stop_reason="tool_use", tool_uses=uses))
        body = f.anthropic_message(
            None, stop_reason="tool_use", tool_uses=[("toolu_up1", TOOL_NAME, TOOL_ARGS)]
        )
        return Reply.json(body)
    if stream:
        return Reply.sse(f.gemini_stream((), calls=[(TOOL_NAME, TOOL_ARGS)]))
    return Reply.json(f.gemini_response(None, calls=[(TOOL_NAME, TOOL_ARGS)]))


def final_reply(dialect: str, stream: bool) -> Reply:
    """ "It is sunny.", ended naturally, 11 input and 3 output tokens."""
    pieces = ("It is", " sun", "ny.")
    if dialect == "openai":
        return (
            Reply.sse(f.chat_stream(pieces))
            if stream
            else Reply.json(f.chat_completion(FINAL_TEXT))
        )
    if dialect == "anthropic":
        if stream:
            return Reply.sse(f.anthropic_stream(pieces))
        return Reply.json(f.anthropic_message(FINAL_TEXT))
    return (
        Reply.sse(f.gemini_stream(pieces)) if stream else Reply.json(f.gemini_response(FINAL_TEXT))
    )


def error_reply(dialect: str, status: int, message: str) -> Reply:
    if dialect == "openai":
        return f.openai_error(status, message)
    if dialect == "anthropic":
        kind = {529: "overloaded_error", 429: "rate_limit_error"}.get(status, "api_error")
        return f.anthropic_error(status, message, kind)
    return f.gemini_error(status, message)


# ---- what an upstream was sent ------------------------------------------------------------------


@dataclass
class SentToolTurn:
    """The tool call and its result as the last request carried them to the upstream."""

    call_id: str | None
    call_name: str
    call_args: dict[str, Any]
    result_id: str | None  # the id (or, for Gemini, the function name) pairing the result
    result: Any


def sent_tool_turn(dialect: str, body: dict[str, Any]) -> SentToolTurn:
    if dialect == "openai":
        calls = [m for m in body["messages"] if m["role"] == "assistant"][-1]["tool_calls"]
        result = [m for m in body["messages"] if m["role"] == "tool"][-1]
        fn = calls[0]["function"]
        return SentToolTurn(
            calls[0]["id"],
            fn["name"],
            json.loads(fn["arguments"]),
            result["tool_call_id"],
            result["content"],
        )
    if dialect == "anthropic":
        use = body["messages"][-2]["content"][0]
        tool_result = body["messages"][-1]["content"][0]
        content = tool_result["content"]
        text = content if isinstance(content, str) else "".join(b["text"] for b in content)
        return SentToolTurn(use["id"], use["name"], use["input"], tool_result["tool_use_id"], text)
    call = body["contents"][-2]["parts"][0]["functionCall"]
    response = body["contents"][-1]["parts"][0]["functionResponse"]
    return SentToolTurn(
        call.get("id"), call["name"], call["args"], response["name"], response["response"]
    )


def expected_tool_turn(upstream: str) -> SentToolTurn:
    """What a faithful gateway sends back, whichever client dialect asked."""
    if upstream == "gemini":
        return SentToolTurn(None, TOOL_NAME, TOOL_ARGS, TOOL_NAME, {"result": TOOL_RESULT})
    call_id = UPSTREAM_CALL_IDS[upstream]
    return SentToolTurn(call_id, TOOL_NAME, TOOL_ARGS, call_id, TOOL_RESULT)


def auth_header(dialect: str, headers: dict[str, str]) -> str | None:
    if dialect == "openai":
        return headers.get("authorization")
    if dialect == "anthropic":
        return headers.get("x-api-key")
    return headers.get("x-goog-api-key")


EXPECTED_AUTH = {
    "openai": f"Bearer {UPSTREAM_KEY}",
    "anthropic": UPSTREAM_KEY,
    "gemini": UPSTREAM_KEY,
}
