"""Error envelopes as each SDK and app reads them: OpenAI's `code` is a string or null (apps
detect `model_not_found` and `context_length_exceeded` by it), and an engine's refusal of tools
reaches the client as a 400 naming the model and the missing capability, not engine flags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serving.gateway import errors
from serving.gateway.app import create_app
from serving.gateway.dialects.openai.router import render_error
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import serve

# (error, expected OpenAI body, expected status)
OPENAI_CASES: list[tuple[errors.GatewayError, dict[str, Any], int]] = [
    (
        errors.NotFound("model 'x' not found", param="model", code="model_not_found"),
        {
            "message": "model 'x' not found",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        },
        404,
    ),
    (
        errors.ContextWindowExceeded("too long", param="messages"),
        {
            "message": "too long",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
        400,
    ),
    (
        errors.RateLimited("slow down", retry_after=2),
        {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        },
        429,
    ),
    (
        errors.UpstreamError("bad answer"),
        {"message": "bad answer", "type": "server_error", "param": None, "code": None},
        502,
    ),
    (
        errors.InvalidRequest("n: must be >= 1", param="n"),
        {"message": "n: must be >= 1", "type": "invalid_request_error", "param": "n", "code": None},
        400,
    ),
]


@pytest.mark.parametrize(("exc", "expected", "status"), OPENAI_CASES)
def test_openai_envelope(exc: errors.GatewayError, expected: dict[str, Any], status: int) -> None:
    response = render_error(exc, "req_1")
    assert response.status_code == status
    assert json.loads(bytes(response.body)) == {"error": expected}


VLLM_TOOL_REFUSAL = {
    "object": "error",
    "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser'
    " to be set",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[str, FakeUpstream]]:
    fake = FakeUpstream()
    with serve(fake.app) as up:
        settings = parse_settings(
            {
                "upstreams": [
                    {"name": "engine", "base_url": up + "/v1", "health": {"enabled": False}}
                ],
                "routes": [
                    {"model": "plain", "targets": [{"upstream": "engine", "model": "m"}]},
                    {
                        "model": "small",
                        "targets": [{"upstream": "engine", "model": "m", "context_window": 50}],
                    },
                ],
            },
            "envelopes",
        )
        with serve(create_app(settings)) as url:
            yield url, fake


def test_an_engine_without_tool_calling_is_a_400_naming_model_and_capability(
    setup: tuple[str, FakeUpstream],
) -> None:
    url, fake = setup
    fake.script(Reply.json(VLLM_TOOL_REFUSAL, 400))
    messages = [{"role": "user", "content": "hi"}]
    oai = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "plain", "messages": messages, "tools": TOOLS},
        timeout=10,
    )
    ant = httpx.post(
        url + "/v1/messages",
        json={
            "model": "plain",
            "max_tokens": 8,
            "messages": messages,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        },
        timeout=10,
    )
    for response, message in (
        (oai, oai.json()["error"]["message"]),
        (ant, ant.json()["error"]["message"]),
    ):
        assert response.status_code == 400
        assert "'plain'" in message and "tool calling" in message
        assert "--enable-auto-tool-choice" not in message and "--tool-call-parser" not in message
    assert oai.json()["error"]["code"] == "unsupported_capability"
    assert ant.json()["error"]["type"] == "invalid_request_error"


def test_a_prompt_that_fits_no_target_is_context_length_exceeded(
    setup: tuple[str, FakeUpstream],
) -> None:
    url, _ = setup
    body = {"model": "small", "messages": [{"role": "user", "content": "word " * 200}]}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert response.json()["error"]["type"] == "invalid_request_error"
