"""The OpenAI Agents SDK (PyPI `openai-agents`) with its default model, which calls the Responses
API, against the gateway in front of a Chat-Completions-only fake: a run with a function tool,
whole and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.models.openai_provider import OpenAIProvider
from openai import AsyncOpenAI

from tests.support.fake_upstream import Reply, chat_completion, chat_stream
from tests.support.responses_gateway import ResponsesGateway, responses_gateway

CALLED: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    CALLED.append(city)
    return f"sunny in {city}, 21C"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[ResponsesGateway]:
    with responses_gateway({"sqlite_path": str(tmp_path / "state.sqlite3")}) as g:
        yield g


@pytest.fixture
async def run_config(gw: ResponsesGateway) -> AsyncIterator[RunConfig]:
    """The SDK's default model provider (OpenAIResponsesModel) on a client closed after use."""
    async with AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0) as client:
        yield RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)


def agent() -> Agent:
    return Agent(name="weather", instructions="Use the tool.", model="chat", tools=[get_weather])


TOOL_CALL = {
    "id": "call_a1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def _assert_tool_turn(gw: ResponsesGateway) -> None:
    assert len(gw.local.requests) == 2
    first, second = (r.json() for r in gw.local.requests)
    assert first["messages"][0] == {"role": "system", "content": "Use the tool."}
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_a1", "content": "sunny in Paris, 21C"},
    ]


async def test_agent_run_with_a_tool(gw: ResponsesGateway, run_config: RunConfig) -> None:
    CALLED.clear()
    gw.local.script(
        Reply.json(chat_completion(None, finish_reason="tool_calls", tool_calls=[TOOL_CALL])),
        Reply.json(chat_completion("It is sunny in Paris.")),
    )
    result = await Runner.run(agent(), "Weather in Paris?", run_config=run_config)
    assert result.final_output == "It is sunny in Paris."
    assert CALLED == ["Paris"]
    _assert_tool_turn(gw)


async def test_agent_streamed_run_with_a_tool(gw: ResponsesGateway, run_config: RunConfig) -> None:
    CALLED.clear()
    gw.local.script(
        Reply.sse(
            chat_stream(
                (),
                tool_calls=[("call_a1", "get_weather", ['{"city"', ':"Paris"}'])],
                finish_reason="tool_calls",
            )
        ),
        Reply.sse(chat_stream(("It is ", "sunny."))),
    )
    result = Runner.run_streamed(agent(), "Weather in Paris?", run_config=run_config)
    kinds = [event.type async for event in result.stream_events()]
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert result.final_output == "It is sunny."
    assert CALLED == ["Paris"]
    _assert_tool_turn(gw)
