"""The Vercel AI SDK's `openai(model)` (the Responses API) under node against the gateway in
front of a Chat-Completions-only fake: generateText and streamText, each a run with a tool.

node/responses.mjs makes the SDK calls and prints what it saw as JSON; the assertions live here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import Reply, chat_completion, chat_stream
from tests.support.node import NODE_DIR, node_with_packages
from tests.support.responses_gateway import ResponsesGateway, responses_gateway

CALL = {
    "id": "call_v1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[ResponsesGateway]:
    with responses_gateway({"sqlite_path": str(tmp_path / "state.sqlite3")}) as g:
        yield g


def run_js(node: str, mode: str, url: str, model: str, what: str = "tool") -> Any:
    args = [node, "responses.mjs", mode, url, "k", model, what]
    done = subprocess.run(args, cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def _assert_tool_round_trip(gw: ResponsesGateway) -> None:
    assert len(gw.local.requests) == 2
    first, second = (r.json() for r in gw.local.requests)
    assert first["messages"] == [{"role": "user", "content": "What is the weather in Paris?"}]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["max_tokens"] == 32
    assert second["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_v1", "content": "sunny in Paris, 21C"},
    ]


def test_generate_text_with_a_tool(node: str, gw: ResponsesGateway) -> None:
    gw.local.script(
        Reply.json(chat_completion(None, finish_reason="tool_calls", tool_calls=[CALL])),
        Reply.json(chat_completion("Sunny in Paris.", prompt_tokens=20, completion_tokens=4)),
    )
    seen = run_js(node, "generate", gw.url, "chat")
    assert (seen["text"], seen["finish"], seen["calls"]) == ("Sunny in Paris.", "stop", ["Paris"])
    assert seen["usage"]["inputTokens"] == 11 + 20
    _assert_tool_round_trip(gw)


def test_stream_text_with_a_tool(node: str, gw: ResponsesGateway) -> None:
    fragments = ['{"city"', ':"Paris"}']
    gw.local.script(
        Reply.sse(
            chat_stream(
                (), tool_calls=[("call_v1", "get_weather", fragments)], finish_reason="tool_calls"
            )
        ),
        Reply.sse(chat_stream(("Sunny ", "in Paris."))),
    )
    seen = run_js(node, "stream", gw.url, "chat")
    assert (seen["text"], seen["finish"], seen["calls"]) == ("Sunny in Paris.", "stop", ["Paris"])
    parts = seen["parts"]
    assert parts.index("tool-call") < parts.index("tool-result") < parts.index("text-delta")
    assert parts[-1] == "finish" and "error" not in parts
    _assert_tool_round_trip(gw)
