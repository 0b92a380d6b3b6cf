"""Capability-aware chains, through each dialect's official SDK: a target that lacks what the
request needs (tools, image input) is skipped without an attempt (reason `capability`), and
when no target can serve, the client gets its own dialect's 400 naming the capability."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.servers import serve

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
SCHEMA: dict[str, object] = {"type": "object", "properties": {"city": {"type": "string"}}}


@dataclass
class Setup:
    url: str
    plain: FakeUpstream  # text only, no tool parser
    able: FakeUpstream  # tools and vision


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    plain = FakeUpstream([Reply.json(chat_completion("plain"))])
    able = FakeUpstream([Reply.json(chat_completion("able"))])
    text_only = {"tools": False, "vision": False}
    with serve(plain.app) as p, serve(able.app) as a:
        settings = parse_settings(
            {
                "upstreams": [
                    {"name": "plain", "base_url": p + "/v1"},
                    {"name": "able", "base_url": a + "/v1"},
                ],
                "routes": [
                    {
                        "model": "text-only",
                        "targets": [{"upstream": "plain", "model": "m", "capabilities": text_only}],
                    },
                    {
                        "model": "mixed",
                        "targets": [
                            {"upstream": "plain", "model": "m", "capabilities": text_only},
                            {"upstream": "able", "model": "m", "capabilities": {"tools": True}},
                        ],
                    },
                ],
            }
        )
        with serve(create_app(settings)) as url:
            yield Setup(url, plain, able)


def _oai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0, timeout=10)


def _ant(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=10)


def _gem(url: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))


def _openai(url: str, model: str, need: str) -> None:
    client = _oai(url)
    if need == "tools":
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": SCHEMA}}],
        )
    else:
        client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG}"},
                        },
                    ],
                }
            ],
        )


def _anthropic(url: str, model: str, need: str) -> None:
    client = _ant(url)
    if need == "tools":
        client.messages.create(
            model=model,
            max_tokens=8,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[{"name": "weather", "input_schema": {"type": "object"}}],
        )
    else:
        client.messages.create(
            model=model,
            max_tokens=8,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "text", "text": "what is this?"},
                    ],
                }
            ],
        )


def _gemini(url: str, model: str, need: str) -> None:
    client = _gem(url)
    if need == "tools":
        decl = types.FunctionDeclaration(name="weather", parameters_json_schema=SCHEMA)
        client.models.generate_content(
            model=model,
            contents="weather?",
            config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])]),
        )
    else:
        image = types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")
        parts: list[types.Content] = [
            types.Content(role="user", parts=[image, types.Part.from_text(text="what is this?")])
        ]
        client.models.generate_content(model=model, contents=parts)


CALLS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}
WORDS = {"tools": "tool calling", "vision": "image input"}


@pytest.mark.parametrize("need", ["tools", "vision"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_no_able_target_is_the_dialects_400_naming_the_capability(
    setup: Setup, dialect: str, need: str
) -> None:
    before = len(setup.plain.requests)
    if dialect == "openai":
        with pytest.raises(openai.BadRequestError) as oe:
            _openai(setup.url, "text-only", need)
        assert oe.value.status_code == 400
        body = oe.value.body
        assert isinstance(body, dict) and body["code"] == "unsupported_capability"
        message = oe.value.message
    elif dialect == "anthropic":
        with pytest.raises(anthropic.BadRequestError) as ae:
            _anthropic(setup.url, "text-only", need)
        assert ae.value.status_code == 400
        assert isinstance(ae.value.body, dict)
        assert ae.value.body["error"]["type"] == "invalid_request_error"
        message = ae.value.message
    else:
        with pytest.raises(genai_errors.ClientError) as ge:
            _gemini(setup.url, "text-only", need)
        assert ge.value.code == 400 and ge.value.status == "INVALID_ARGUMENT"
        message = str(ge.value.message)
    assert WORDS[need] in message and "text-only" in message
    assert len(setup.plain.requests) == before, "a target that cannot serve was contacted"


@pytest.mark.parametrize("need", ["tools", "vision"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
def test_an_unable_target_is_skipped_without_an_attempt(
    setup: Setup, dialect: str, need: str
) -> None:
    plain_before, able_before = len(setup.plain.requests), len(setup.able.requests)
    CALLS[dialect](setup.url, "mixed", need)
    assert len(setup.plain.requests) == plain_before
    assert len(setup.able.requests) == able_before + 1
    sent = setup.able.requests[-1].json()
    if need == "tools":
        assert sent["tools"][0]["function"]["name"] == "weather"
    else:
        parts = sent["messages"][-1]["content"]
        assert any(p.get("type") == "image_url" for p in parts)


def test_the_skip_is_reported_and_counted(setup: Setup) -> None:
    import httpx

    r = httpx.post(
        setup.url + "/v1/chat/completions",
        json={
            "model": "mixed",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}],
        },
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["x-serving-target"] == "able/m"
    assert r.headers["x-serving-fallback"] == "plain/m:capability"
    metrics = httpx.get(setup.url + "/metrics").text
    assert (
        'serving_target_skips_total{reason="capability",route="mixed",target="plain/m"}' in metrics
    )


def test_a_plain_request_still_uses_the_text_only_target(setup: Setup) -> None:
    out = _oai(setup.url).chat.completions.create(
        model="mixed", messages=[{"role": "user", "content": "hi"}]
    )
    assert out.choices[0].message.content == "plain"
