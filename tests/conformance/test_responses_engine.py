"""Responses clients → the gateway → the real vLLM CPU engine's own `/v1/responses`
(pass-through: the upstream is declared `responses_api: true`).

The route's name differs from the served model's, so a forwarded answer (vLLM names its own
model) is told apart from a translated one (which would echo the route's name).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent, ModelSettings, RunConfig, Runner
from agents.models.openai_provider import OpenAIProvider

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.node import NODE_DIR, node_with_packages
from tests.support.redis_server import redis_server
from tests.support.servers import serve

pytestmark = pytest.mark.engine

QUESTION = "What is the capital of France?"
ROUTE = "local-responses"


@pytest.fixture(scope="module")
def gateway_url(engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    state = tmp_path_factory.mktemp("state") / "responses.sqlite3"
    settings = parse_settings(
        {
            "upstreams": [
                {
                    "name": "embedded",
                    "base_url": engine.base_url,
                    "responses_api": True,
                    "timeouts": {"first_byte": 120, "total": 300},
                }
            ],
            "routes": [
                {
                    "model": ROUTE,
                    "targets": [{"upstream": "embedded", "model": engine.served_model}],
                }
            ],
            "state": {"sqlite_path": str(state)},
        }
    )
    with serve(create_app(settings)) as url:
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=300)


@pytest.fixture
def c(gateway_url: str) -> Iterator[openai.OpenAI]:
    with client(gateway_url) as oc:
        yield oc


@pytest.fixture
async def config(gateway_url: str) -> AsyncIterator[RunConfig]:
    """The Agents SDK's default model provider (OpenAIResponsesModel), on a closed-after client."""
    from openai import AsyncOpenAI

    url = gateway_url + "/v1"
    async with AsyncOpenAI(base_url=url, api_key="local", max_retries=0, timeout=300) as oa:
        yield RunConfig(model_provider=OpenAIProvider(openai_client=oa), tracing_disabled=True)


def test_create_is_forwarded_and_stored(c: openai.OpenAI) -> None:
    raw = c.responses.with_raw_response.create(
        model=ROUTE, input=QUESTION, max_output_tokens=32, temperature=0
    )
    assert raw.headers["x-serving-target"] == "embedded/smollm2"
    r = raw.parse()
    assert r.model == "smollm2"  # vLLM's own answer, not a translation
    assert "Paris" in r.output_text
    assert r.usage is not None and r.usage.input_tokens > 5 and r.usage.output_tokens > 0
    assert c.responses.retrieve(r.id).output_text == r.output_text


def test_stream_is_relayed_in_order(c: openai.OpenAI) -> None:
    with c.responses.stream(
        model=ROUTE, input=QUESTION, max_output_tokens=32, temperature=0
    ) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert "Paris" in final.output_text


def test_previous_response_id_sends_the_whole_thread(c: openai.OpenAI) -> None:
    first = c.responses.create(model=ROUTE, input=QUESTION, max_output_tokens=32, temperature=0)
    second = c.responses.create(
        model=ROUTE,
        input="Say it again.",
        previous_response_id=first.id,
        max_output_tokens=32,
        temperature=0,
    )
    assert second.status in ("completed", "incomplete") and second.output_text
    items = list(c.responses.input_items.list(second.id, order="asc"))
    assert [getattr(i, "role", None) for i in items] == ["user", "assistant", "user"]
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens  # the thread was sent


async def test_agents_sdk_default_model(config: RunConfig) -> None:
    agent = Agent(
        name="geo",
        instructions="Answer in one sentence.",
        model=ROUTE,
        model_settings=ModelSettings(temperature=0, max_tokens=32),
    )
    result = await Runner.run(agent, QUESTION, run_config=config)
    assert "Paris" in str(result.final_output)


@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_vercel_ai_sdk(gateway_url: str, mode: str) -> None:
    node = node_with_packages()
    args = [node, "responses.mjs", mode, gateway_url, "local", ROUTE, "text"]
    done = subprocess.run(args, cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    seen: dict[str, Any] = json.loads(done.stdout)
    assert "Paris" in seen["text"]
    assert seen["finish"] in ("stop", "length")
    assert seen["usage"]["outputTokens"] > 0


async def test_agents_sdk_run_with_a_tool(config: RunConfig) -> None:
    """The 135M model rarely calls a tool well; what must hold is that a tool-bearing run
    completes through the engine's own Responses endpoint (tools forwarded untouched)."""
    from agents import function_tool

    @function_tool
    def capital_of(country: str) -> str:
        """The capital city of a country."""
        return "Paris" if "france" in country.lower() else "unknown"

    agent = Agent(
        name="geo",
        instructions="Answer in one sentence.",
        model=ROUTE,
        tools=[capital_of],
        model_settings=ModelSettings(temperature=0, max_tokens=32),
    )
    result = await Runner.run(agent, QUESTION, run_config=config, max_turns=3)
    assert result.final_output is not None
    assert result.raw_responses and all(r.response_id for r in result.raw_responses)


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"backend": "sqlite", "sqlite_path": str(tmp_path / "state.sqlite3")}
        return
    with redis_server(tmp_path) as url:
        yield {"backend": "redis", "redis_url": url}


def test_three_turns_from_a_hosted_fake_to_the_engine(engine, state: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """Turn 1 on a hosted Responses fake; it fails, and turns 2 and 3 are answered by the real
    engine's /v1/responses with the whole thread from the gateway's store (SQLite, then a real
    redis-server)."""
    from tests.support.fake_upstream import FakeUpstream, Reply, openai_error
    from tests.support.responses_gateway import hosted_response

    hosted = FakeUpstream([Reply.json(hosted_response("The capital of France is Paris."))])
    with serve(hosted.app) as hosted_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {
                        "name": "hosted",
                        "base_url": hosted_url + "/v1",
                        "locality": "hosted",
                        "responses_api": True,
                        "retry": {"attempts": 0},
                    },
                    {
                        "name": "embedded",
                        "base_url": engine.base_url,
                        "responses_api": True,
                        "timeouts": {"first_byte": 120, "total": 300},
                    },
                ],
                "routes": [
                    {
                        "model": "chain",
                        "targets": [
                            {"upstream": "hosted", "model": "gpt-hosted"},
                            {"upstream": "embedded", "model": engine.served_model},
                        ],
                    }
                ],
                "privacy": {"detect": False},
                "state": state,
            }
        )
        with serve(create_app(settings)) as url, client(url) as c:
            first = c.responses.create(model="chain", input=QUESTION)
            assert first.output_text == "The capital of France is Paris."
            hosted.script(openai_error(503, "hosted is down", "server_error"))
            turns = [first]
            for text in ("Say it again.", "And once more."):
                raw = c.responses.with_raw_response.create(
                    model="chain",
                    input=text,
                    previous_response_id=turns[-1].id,
                    max_output_tokens=24,
                    temperature=0,
                )
                assert raw.headers["x-serving-target"] == "embedded/smollm2"
                turns.append(raw.parse())
                tried = hosted.requests[-1].json()["input"]  # the failed attempt's thread
                assert [i["content"] if i.get("role") == "user" else "…" for i in tried][-1] == text
            assert [len(hosted.requests[i].json()["input"]) for i in (1, 2)] == [3, 5]
            items = list(c.responses.input_items.list(turns[2].id, order="asc"))
            assert [getattr(i, "role", None) for i in items] == ["user", "assistant"] * 2 + ["user"]
            assert items[1].content[0].text == "The capital of France is Paris."  # type: ignore[union-attr,index]
            assert turns[2].usage is not None and turns[1].usage is not None
            assert turns[2].usage.input_tokens > turns[1].usage.input_tokens  # the thread grew
