"""Property: any value a detector should find, placed in any user-data field of a Responses
request (input string, message content and parts, instructions, function call arguments and
outputs, tool descriptions), split across adjacent parts, JSON-escaped at random, streamed or
not: no request reaches a hosted upstream, forwarded (a Responses-speaking target) or
translated (a Chat Completions target), and the client gets the OpenAI-envelope privacy 503.

The detector values and the random escaping are the ones the other dialects' property uses
(tests/gateway/test_privacy_property.py). Bounded: a fixed number of examples, no deadline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.gateway.test_privacy_property import VALUES, Parts, encode, splits
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion
from tests.support.responses_gateway import hosted_response
from tests.support.servers import free_port, serve


def _text(p: str) -> dict[str, Any]:
    return {"type": "input_text", "text": p}


def _joined(parts: Parts) -> str:
    return "".join(parts)


PLACEMENTS: dict[str, Callable[[Parts], dict[str, Any]]] = {
    "input_string": lambda v: {"input": _joined(v)},
    "message_string": lambda v: {"input": [{"role": "user", "content": _joined(v)}]},
    "message_parts": lambda v: {
        "input": [{"type": "message", "role": "user", "content": [_text(p) for p in v]}]
    },
    "developer_message": lambda v: {
        "input": [
            {"role": "developer", "content": _joined(v)},
            {"role": "user", "content": "hi"},
        ]
    },
    "instructions": lambda v: {"instructions": _joined(v), "input": "hi"},
    "call_arguments": lambda v: {
        "input": [
            {"role": "user", "content": "hi"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "note",
                "arguments": json.dumps({"text": _joined(v)}),
            },
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]
    },
    "call_output": lambda v: {
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c1", "name": "note", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": _joined(v)},
        ]
    },
    "assistant_output_text": lambda v: {
        "input": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": p} for p in v],
            },
            {"role": "user", "content": "and?"},
        ]
    },
    "tool_description": lambda v: {
        "input": "hi",
        "tools": [
            {
                "type": "function",
                "name": "note",
                "description": _joined(v),
                "parameters": {"type": "object", "properties": {}},
            }
        ],
    },
}


@dataclass
class Setup:
    url: str
    hosted: FakeUpstream


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    hosted = FakeUpstream()
    state: Path = tmp_path_factory.mktemp("state") / "s.sqlite3"
    with serve(hosted.app) as h_url:
        config = {
            "upstreams": [
                {
                    "name": "native",
                    "base_url": h_url + "/v1",
                    "locality": "hosted",
                    "responses_api": True,
                },
                {"name": "chat", "base_url": h_url + "/v1", "locality": "hosted"},
                {"name": "local", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
            ],
            "routes": [
                {
                    "model": m,
                    "targets": [{"upstream": u, "model": "m"} for u in (*first, "local")],
                }
                for m, first in (("native", ("native", "chat")), ("chat", ("chat", "native")))
            ],
            "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
            "state": {"sqlite_path": str(state)},
        }
        with serve(create_app(parse_settings(config, "responses-privacy"))) as url:
            yield Setup(url, hosted)


def post(s: Setup, route: str, body: dict[str, Any], stream: bool, seed: int) -> httpx.Response:
    data = encode({"model": route, **body, "stream": stream}, random.Random(seed))
    return httpx.post(
        s.url + "/v1/responses",
        content=data.encode("utf-8", "surrogatepass"),
        headers={"content-type": "application/json"},
        timeout=10,
    )


_PADDING = st.sampled_from(["", "my ", "note: ", "é ", "\U0001f512 ", "(", "x/"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, Parts, bool, int]:
    value = draw(VALUES[draw(st.sampled_from(sorted(VALUES)))])
    text = draw(_PADDING) + value + draw(st.sampled_from(["", " please", ".", " \U0001f600"]))
    return (
        draw(st.sampled_from(["native", "chat"])),
        draw(st.sampled_from(sorted(PLACEMENTS))),
        draw(splits(text)),
        draw(st.booleans()),
        draw(st.integers()),
    )


@settings(
    max_examples=150,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_detected_values_never_reach_a_hosted_upstream(
    setup: Setup, case: tuple[str, str, Parts, bool, int]
) -> None:
    route, placement, parts, stream, seed = case
    setup.hosted.requests.clear()
    response = post(setup, route, PLACEMENTS[placement](parts), stream, seed)
    assert setup.hosted.requests == []
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "private" in message and "no hosted target was contacted" in message


@pytest.mark.parametrize("route", ["native", "chat"])
@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_every_placement_reaches_the_hosted_fake_without_a_detected_value(
    setup: Setup, route: str, placement: str
) -> None:
    """The control: harmless text in the same places is served by the hosted fake, so the
    property cannot pass because a placement is refused for another reason."""
    reply = hosted_response("served") if route == "native" else chat_completion("served")
    setup.hosted.script(Reply.json(reply))
    setup.hosted.requests.clear()
    response = post(setup, route, PLACEMENTS[placement](["a harmless ", "sentence"]), False, 0)
    assert response.status_code == 200, response.text
    assert [q.path for q in setup.hosted.requests] == [
        "/v1/responses" if route == "native" else "/v1/chat/completions"
    ]
