"""A target whose window holds the prompt but not the requested output serves it with the
output budget lowered to what fits: said in `x-serving-max-tokens-lowered`, counted, and the
lowered value is what the upstream receives. Every client dialect through its official SDK,
against an upstream of every dialect (same-dialect pass-through and translation)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support import fake_upstream as f
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import serve

DIALECTS = ("openai", "anthropic", "gemini")
WINDOW = 400
ASKED = 4000
_BASE = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
_REPLY = {
    "openai": lambda: Reply.json(f.chat_completion("ok")),
    "anthropic": lambda: Reply.json(f.anthropic_message("ok")),
    "gemini": lambda: Reply.json(f.gemini_response("ok")),
}


class Setup:
    def __init__(self, url: str, fakes: dict[str, FakeUpstream]) -> None:
        self.url = url
        self.fakes = fakes


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    fakes = {d: FakeUpstream() for d in DIALECTS}
    with ExitStack() as stack:
        urls = {d: stack.enter_context(serve(fake.app)) for d, fake in fakes.items()}
        upstreams = [{"name": d, "dialect": d, "base_url": urls[d] + _BASE[d]} for d in DIALECTS]
        routes = [
            {
                "model": f"to-{d}",
                "targets": [{"upstream": d, "model": "m", "context_window": WINDOW}],
            }
            for d in DIALECTS
        ]
        settings = parse_settings(
            {"upstreams": upstreams, "routes": routes, "policy": {"retry": {"attempts": 0}}}, "t"
        )
        yield Setup(stack.enter_context(serve(create_app(settings))), fakes)


def ask(url: str, client: str, model: str, text: str) -> Mapping[str, str]:
    """One non-streamed request through the client's SDK; the response headers."""
    if client == "openai":
        oc = openai.OpenAI(base_url=url + "/v1", api_key="c", max_retries=0)
        raw = oc.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=ASKED
        )
        raw.parse()
        return raw.headers
    if client == "anthropic":
        ac = anthropic.Anthropic(base_url=url, api_key="c", max_retries=0)
        araw = ac.messages.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=ASKED
        )
        araw.parse()
        return araw.headers
    gc = genai.Client(api_key="c", http_options=types.HttpOptions(base_url=url))
    answer = gc.models.generate_content(
        model=model,
        contents=text,
        config=types.GenerateContentConfig(max_output_tokens=ASKED),
    )
    assert answer.sdk_http_response is not None and answer.sdk_http_response.headers
    return httpx.Headers(answer.sdk_http_response.headers)


def received_budget(dialect: str, body: dict[str, Any]) -> Any:
    if dialect == "gemini":
        return body["generationConfig"]["maxOutputTokens"]
    return body.get("max_completion_tokens", body.get("max_tokens"))


@pytest.mark.parametrize("upstream", DIALECTS)
@pytest.mark.parametrize("client", DIALECTS)
def test_output_budget_is_lowered_to_fit_the_window(
    setup: Setup, client: str, upstream: str
) -> None:
    fake = setup.fakes[upstream]
    fake.script(_REPLY[upstream]())
    fake.requests.clear()
    headers = ask(setup.url, client, f"to-{upstream}", "What is the capital of France?")
    label, _, value = headers["x-serving-max-tokens-lowered"].partition("=")
    assert label == f"{upstream}/m"
    lowered = int(value)
    assert 0 < lowered < WINDOW  # the window less the prompt's estimate
    assert len(fake.requests) == 1
    assert received_budget(upstream, fake.requests[0].json()) == lowered
    metrics = httpx.get(setup.url + "/metrics").text
    assert f'serving_max_tokens_lowered_total{{route="to-{upstream}",target="{upstream}/m"}}' in (
        metrics
    )


def test_a_budget_that_fits_is_left_alone(setup: Setup) -> None:
    fake = setup.fakes["openai"]
    fake.script(_REPLY["openai"]())
    fake.requests.clear()
    oc = openai.OpenAI(base_url=setup.url + "/v1", api_key="c", max_retries=0)
    raw = oc.chat.completions.with_raw_response.create(
        model="to-openai", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    assert "x-serving-max-tokens-lowered" not in raw.headers
    assert fake.requests[0].json()["max_tokens"] == 50


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_prompt_that_cannot_fit_by_itself_names_its_size_and_the_window(
    setup: Setup, client: str
) -> None:
    fake = setup.fakes["openai"]
    fake.requests.clear()
    error = openai.BadRequestError if client == "openai" else anthropic.BadRequestError
    with pytest.raises(error) as info:
        ask(setup.url, client, "to-openai", "word " * 2000)
    message = str(info.value)
    assert "does not fit" in message and f"{WINDOW} tokens" in message
    assert "about " in message
    assert fake.requests == []
