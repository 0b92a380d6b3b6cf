"""The Anthropic client's view of what translation cannot carry: server tools are refused by
name (and forwarded to an Anthropic upstream), `anthropic-beta` and `thinking` are reported as
dropped, and count_tokens without any counting upstream answers the route's estimate, marked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import anthropic
import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.policy.context import ContextPolicy
from serving.gateway.policy.facts import build_facts
from serving.gateway.settings import Context, parse_settings
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    anthropic_message,
    chat_completion,
    openai_error,
)
from tests.support.servers import serve

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
USER = [{"role": "user", "content": "Find the news"}]


@dataclass
class Setup:
    url: str
    openai: FakeUpstream
    claude: FakeUpstream
    sdk: anthropic.Anthropic


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    oai, claude = FakeUpstream(), FakeUpstream()
    with ExitStack() as stack:
        oai_url = stack.enter_context(serve(oai.app))
        claude_url = stack.enter_context(serve(claude.app))
        settings = parse_settings(
            {
                "policy": {"retry": {"attempts": 0}},
                "upstreams": [
                    {"name": "oai", "base_url": oai_url + "/v1", "locality": "hosted"},
                    {"name": "claude", "dialect": "anthropic", "base_url": claude_url + "/v1"},
                ],
                "routes": [
                    {"model": "via-openai", "targets": [{"upstream": "oai", "model": "gpt"}]},
                    {"model": "via-claude", "targets": [{"upstream": "claude", "model": "c"}]},
                ],
                "privacy": {"detect": False},
            },
            "anthropic-signals",
        )
        url = stack.enter_context(serve(create_app(settings)))
        # One SDK client, closed at the end: a client made per test and caught up in an
        # error's traceback is freed by the cycle collector, whose order may drop its socket
        # before the client's own close (an unclosed-socket warning in whichever test runs).
        sdk = stack.enter_context(anthropic.Anthropic(base_url=url, api_key="k", max_retries=0))
        yield Setup(url, oai, claude, sdk)


def client(setup: Setup) -> anthropic.Anthropic:
    return setup.sdk


def test_server_tool_to_a_translating_target_is_a_clear_400(setup: Setup) -> None:
    setup.openai.requests.clear()
    with pytest.raises(anthropic.BadRequestError) as info:
        client(setup).messages.create(
            model="via-openai",
            max_tokens=10,
            messages=USER,  # type: ignore[arg-type]
            tools=[WEB_SEARCH],  # type: ignore[list-item]
        )
    assert "web_search_20250305" in info.value.message
    assert "server tool" in info.value.message
    assert setup.openai.requests == []


def test_server_tool_to_an_anthropic_upstream_is_forwarded(setup: Setup) -> None:
    setup.claude.script(Reply.json(anthropic_message("found it")))
    msg = client(setup).messages.create(
        model="via-claude",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
        tools=[WEB_SEARCH],  # type: ignore[list-item]
    )
    assert msg.content[0].text == "found it"  # type: ignore[union-attr]
    assert setup.claude.requests[-1].json()["tools"] == [WEB_SEARCH]


def test_legacy_output_format_is_translated(setup: Setup) -> None:
    setup.openai.script(Reply.json(chat_completion('{"ok":true}')))
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    raw = client(setup).messages.with_raw_response.create(
        model="via-openai",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
        extra_body={"output_format": {"type": "json_schema", "schema": schema}},
    )
    assert raw.parse().content[0].text == '{"ok":true}'  # type: ignore[union-attr]
    sent = setup.openai.requests[-1].json()
    assert sent["response_format"]["json_schema"]["schema"] == schema


def test_beta_header_and_thinking_are_reported_as_dropped(setup: Setup) -> None:
    setup.openai.script(Reply.json(chat_completion("hi")))
    raw = client(setup).messages.with_raw_response.create(  # type: ignore[call-overload]
        model="via-openai",
        max_tokens=2000,
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    assert raw.headers["x-serving-dropped"] == "anthropic-beta,thinking"
    assert "thinking" not in setup.openai.requests[-1].json()
    setup.claude.script(Reply.json(anthropic_message("hi")))
    raw = client(setup).messages.with_raw_response.create(
        model="via-claude",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
        extra_headers={"anthropic-beta": "x"},
    )
    assert raw.headers["x-serving-dropped"] == "anthropic-beta"
    assert "anthropic-beta" not in setup.claude.requests[-1].headers
    plain = client(setup).messages.with_raw_response.create(
        model="via-claude",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
    )
    assert "x-serving-dropped" not in plain.headers


def test_count_tokens_without_tokenize_is_an_estimate(setup: Setup) -> None:
    setup.openai.script(openai_error(404, "Not Found", "not_found_error"))
    raw = client(setup).messages.with_raw_response.count_tokens(
        model="via-openai",
        messages=USER,  # type: ignore[arg-type]
    )
    assert raw.headers["x-serving-token-count"] == "estimated"
    sent = json.loads(raw.http_request.content)
    expected = ContextPolicy(Context()).text_tokens(build_facts(sent))  # the route's estimate
    assert raw.parse().input_tokens == expected > 0
    assert setup.openai.requests[-1].path == "/tokenize"


def test_an_upstream_that_cannot_count_keeps_its_circuit_closed(setup: Setup) -> None:
    """A 404 from /tokenize says nothing about the upstream's health: counting many times
    leaves it serving generations."""
    for _ in range(8):
        setup.openai.script(openai_error(404, "Not Found", "not_found_error"))
        raw = client(setup).messages.with_raw_response.count_tokens(
            model="via-openai",
            messages=USER,  # type: ignore[arg-type]
        )
        assert raw.headers["x-serving-token-count"] == "estimated"
    setup.openai.script(Reply.json(chat_completion("still here")))
    reply = client(setup).messages.create(
        model="via-openai",
        max_tokens=10,
        messages=USER,  # type: ignore[arg-type]
    )
    assert reply.content[0].text == "still here"  # type: ignore[union-attr]


def test_gemini_count_tokens_without_tokenize_is_an_estimate(setup: Setup) -> None:
    setup.openai.script(openai_error(404, "Not Found", "not_found_error"))
    body = {"contents": [{"role": "user", "parts": [{"text": "Find the news"}]}]}
    r = httpx.post(f"{setup.url}/v1beta/models/via-openai:countTokens", json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-serving-token-count"] == "estimated"
    assert r.json()["totalTokens"] == ContextPolicy(Context()).text_tokens(build_facts(body))


def test_count_tokens_from_a_counting_upstream_is_not_marked(setup: Setup) -> None:
    setup.claude.script(Reply.json({"input_tokens": 7}))
    raw = client(setup).messages.with_raw_response.count_tokens(
        model="via-claude",
        messages=USER,  # type: ignore[arg-type]
    )
    assert raw.parse().input_tokens == 7
    assert "x-serving-token-count" not in raw.headers


def test_responses_reasoning_is_reported_dropped_only_where_it_has_no_form(setup: Setup) -> None:
    """A Responses client's `reasoning`: `reasoning_effort` towards an OpenAI-compatible
    target, and `x-serving-dropped: reasoning` from an Anthropic one (it has no such field)."""
    body = {"input": "hi", "reasoning": {"effort": "low"}, "store": False}
    setup.claude.script(Reply.json(anthropic_message("from claude")))
    r = httpx.post(f"{setup.url}/v1/responses", json={"model": "via-claude", **body}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-serving-dropped"] == "reasoning"
    assert "reasoning" not in setup.claude.requests[-1].json()
    setup.openai.script(Reply.json(chat_completion("from openai")))
    r = httpx.post(f"{setup.url}/v1/responses", json={"model": "via-openai", **body}, timeout=10)
    assert r.status_code == 200, r.text
    assert "x-serving-dropped" not in r.headers
    assert setup.openai.requests[-1].json()["reasoning_effort"] == "low"
