"""The official JS SDKs (`openai`, `@anthropic-ai/sdk`) under node as gateway clients, against
upstreams of every dialect: the same conversation as test_matrix.py, and error parity.

node/matrix.mjs does the SDK calls and prints what it saw as JSON; the assertions live here.
The packages are pinned by node/package-lock.json and installed with `npm ci` when any is
missing (tests/support/node.py). Without node or npm the tests fail: they are part of the
contract.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.matrix import (
    CLIENT_KEY,
    DIALECTS,
    FINAL_TEXT,
    TOOL_ARGS,
    TOOL_NAME,
    UPSTREAM_CALL_IDS,
    Matrix,
    error_reply,
    expected_tool_turn,
    final_reply,
    matrix_gateway,
    sent_tool_turn,
    text_reply,
    tool_reply,
)
from tests.support.node import NODE_DIR, node_with_packages

JS_CLIENTS = ("openai", "anthropic")


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages()


@pytest.fixture(scope="module")
def matrix() -> Iterator[Matrix]:
    with matrix_gateway() as m:
        yield m


def run_js(node: str, mode: str, url: str, client: str, model: str, stream: bool) -> Any:
    how = "stream" if stream else "json"
    args = [node, "matrix.mjs", mode, url, CLIENT_KEY, client, model, how]
    done = subprocess.run(args, cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


END_TURN = {"openai": "stop", "anthropic": "end_turn"}
TOOL_USE = {"openai": "tool_calls", "anthropic": "tool_use"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("upstream", DIALECTS)
@pytest.mark.parametrize("client", JS_CLIENTS)
def test_js_conversation(
    node: str, matrix: Matrix, client: str, upstream: str, stream: bool
) -> None:
    fake = matrix.fakes[upstream]
    fake.script(
        text_reply(upstream, stream), tool_reply(upstream, stream), final_reply(upstream, stream)
    )
    fake.requests.clear()

    seen = run_js(node, "conversation", matrix.url, client, f"via-{upstream}", stream)

    text, call, final = seen["text"], seen["call"], seen["final"]
    assert (text["text"], text["stop"], text["calls"]) == ("Hello!", END_TURN[client], [])
    assert (text["input"], text["output"]) == (11, 3)
    assert call["stop"] == TOOL_USE[client]
    [[call_id, name, args]] = call["calls"]
    assert (name, args) == (TOOL_NAME, TOOL_ARGS)
    assert call_id == (UPSTREAM_CALL_IDS[upstream] or call_id)
    assert call_id.startswith(("call_", "toolu_"))
    assert (call["input"], call["output"]) == (11, 3)
    assert (final["text"], final["stop"], final["calls"]) == (FINAL_TEXT, END_TURN[client], [])
    assert len(fake.requests) == 3
    assert sent_tool_turn(upstream, fake.requests[2].json()) == expected_tool_turn(upstream)


JS_CLASSES = {
    "openai": {
        400: "BadRequestError",
        401: "AuthenticationError",
        404: "NotFoundError",
        413: "APIError",
        429: "RateLimitError",
        500: "InternalServerError",
        502: "InternalServerError",
        529: "InternalServerError",
    },
    "anthropic": {
        400: "BadRequestError",
        401: "AuthenticationError",
        404: "NotFoundError",
        413: "ContentTooLargeError",
        429: "RateLimitError",
        500: "InternalServerError",
        502: "InternalServerError",
        529: "OverloadedError",
    },
}
ERROR_CASES = [
    pytest.param(client, DIALECTS[i % 3], status, id=f"{client}<-{DIALECTS[i % 3]}-{status}")
    for client in JS_CLIENTS
    for i, status in enumerate((400, 401, 404, 413, 429, 500, 529))
]


@pytest.mark.parametrize(("client", "upstream", "status"), ERROR_CASES)
def test_js_error_class(node: str, matrix: Matrix, client: str, upstream: str, status: int) -> None:
    matrix.fakes[upstream].script(error_reply(upstream, status, f"upstream says {status}"))

    seen = run_js(node, "error", matrix.url, client, f"via-{upstream}", status % 2 == 0)

    # An upstream's 401 is the gateway's key being refused: a 502, not the client's 401.
    expected = 502 if status == 401 else status
    assert (seen["class"], seen["status"]) == (JS_CLASSES[client][expected], expected)
    if status in (400, 404, 413):  # the client's fault: the upstream's message is kept
        assert f"upstream says {status}" in seen["message"]
    else:  # auth, rate and server failures: the gateway's own words, naming the upstream
        assert "upstream says" not in seen["message"]
        assert f"upstream '{upstream}'" in seen["message"]


@pytest.mark.parametrize("client", JS_CLIENTS)
def test_js_unknown_model(node: str, matrix: Matrix, client: str) -> None:
    seen = run_js(node, "error", matrix.url, client, "no-such-model", False)
    assert (seen["class"], seen["status"]) == ("NotFoundError", 404)
