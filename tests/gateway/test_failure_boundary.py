"""The upstream failure boundary: every odd fault moves the chain on; with no next target the
client gets its own dialect's error, never a plain-text 500.

Faults: an answer body (or first stream frame) that is not UTF-8, JSON of the wrong shape, and
an exception raised inside the upstream's client (an opener that raises, below the
HTTP layer). Each in all three client dialects, streamed and not. `garbled` is a fake server on
127.0.0.1 answering the fault; `broken` is an upstream whose transport raises; `good` answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.runtime import Gateway
from serving.gateway.settings import parse_settings
from serving.gateway.upstreams.http1 import Connection, Opener, Origin
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion, chat_stream
from tests.support.servers import serve

NO_PROBES = {"enabled": False}  # readiness probes would mark the faulty fakes unhealthy
FAST = {"connect": 1, "first_byte": 2, "total": 5, "stream_idle": 2}
GOOD = "from good"


@dataclass
class Setup:
    url: str
    garbled: FakeUpstream
    good: FakeUpstream
    broken_calls: list[str]


class Boom(RuntimeError):
    pass


def exploding(calls: list[str]) -> Opener:
    """An opener whose every connect raises a non-network exception: a bug in the client."""

    async def open_(origin: Origin, factory: Callable[[], Connection]) -> Connection:
        calls.append(str(origin))
        raise Boom("a bug inside the client")

    return open_


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    garbled, good = FakeUpstream(), FakeUpstream()
    calls: list[str] = []
    with serve(garbled.app) as g_url, serve(good.app) as ok_url:

        def up(name: str, url: str) -> dict[str, Any]:
            return {"name": name, "base_url": url + "/v1", "timeouts": FAST, "health": NO_PROBES}

        def chain(first: str) -> list[dict[str, str]]:
            return [{"upstream": first, "model": "m1"}, {"upstream": "good", "model": "m2"}]

        settings = parse_settings(
            {
                "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
                "privacy": {"detect": False},
                "upstreams": [
                    up("garbled", g_url),
                    up("good", ok_url),
                    up("broken", "http://127.0.0.1:9"),  # never dialled: the opener raises
                ],
                "routes": [
                    {"model": "chain-garbled", "targets": chain("garbled")},
                    {"model": "chain-broken", "targets": chain("broken")},
                    {"model": "solo-garbled", "targets": [{"upstream": "garbled", "model": "m"}]},
                    {"model": "solo-broken", "targets": [{"upstream": "broken", "model": "m"}]},
                ],
            },
            "boundary",
        )
        gateway = Gateway(settings, openers={"broken": exploding(calls)})
        with serve(create_app(settings, gateway)) as url:
            yield Setup(url, garbled, good, calls)


NOT_UTF8 = b"\xff\xfe"


def fault(kind: str, stream: bool) -> Reply:
    """The garbled upstream's answer for a fault kind."""
    if kind == "not_utf8":
        if stream:
            frame = b'data: {"choices":[{"index":0,"delta":{"content":"' + NOT_UTF8 + b'"}}]}\n\n'
            return Reply.sse([frame, b"data: [DONE]\n\n"])
        body = json.dumps(chat_completion("PLACEHOLDER")).encode()
        return Reply.json(body.replace(b"PLACEHOLDER", NOT_UTF8))
    assert kind == "shape"
    if stream:
        return Reply.sse([b'data: {"choices": 7}\n\n', b"data: [DONE]\n\n"])
    return Reply.json({"id": "x", "choices": "not a list"})


def good_reply(stream: bool) -> Reply:
    if stream:
        return Reply.sse(chat_stream((GOOD[:4], GOOD[4:])))
    return Reply.json(chat_completion(GOOD))


def ask(url: str, dialect: str, model: str, stream: bool) -> httpx.Response:
    messages = [{"role": "user", "content": "hi"}]
    if dialect == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return httpx.post(url + "/v1/chat/completions", json=body, timeout=10)
    if dialect == "anthropic":
        body = {"model": model, "max_tokens": 16, "messages": messages, "stream": stream}
        return httpx.post(url + "/v1/messages", json=body, timeout=10)
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    return httpx.post(f"{url}/v1beta/models/{model}:{method}", json=body, timeout=10)


def answer_text(dialect: str, response: httpx.Response, stream: bool) -> str:
    """The answer's text, read the way each dialect carries it."""
    if stream:
        # Every event's JSON; the text is what the deltas add up to in any of the grammars.
        text = ""
        for line in response.text.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            assert "error" not in event and event.get("type") != "error", event
            text += _delta_text(dialect, event)
        return text
    body = response.json()
    if dialect == "openai":
        return str(body["choices"][0]["message"]["content"])
    if dialect == "anthropic":
        return "".join(b["text"] for b in body["content"] if b["type"] == "text")
    return "".join(p.get("text", "") for p in body["candidates"][0]["content"]["parts"])


def _delta_text(dialect: str, event: dict[str, Any]) -> str:
    if dialect == "openai":
        return "".join(str(c["delta"].get("content") or "") for c in event.get("choices", []))
    if dialect == "anthropic":
        delta = event.get("delta") or {}
        return str(delta.get("text", "")) if event.get("type") == "content_block_delta" else ""
    return "".join(
        p.get("text", "")
        for cand in event.get("candidates", [])
        for p in (cand.get("content") or {}).get("parts", [])
    )


def assert_dialect_error(dialect: str, response: httpx.Response) -> None:
    assert response.status_code >= 500
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if dialect == "openai":
        assert body["error"]["type"] == "server_error" and body["error"]["message"]
        assert body["error"]["code"] is None or isinstance(body["error"]["code"], str)
        assert response.headers["x-request-id"].startswith("req_")
    elif dialect == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
        assert body["request_id"] == response.headers["request-id"]
    else:
        assert body["error"]["code"] == response.status_code and body["error"]["status"]
        assert response.headers["x-request-id"].startswith("req_")


DIALECTS = ["openai", "anthropic", "gemini"]
FAULTS = ["not_utf8", "shape", "exception"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", FAULTS)
def test_a_fault_moves_the_chain_on(setup: Setup, kind: str, dialect: str, stream: bool) -> None:
    setup.good.script(good_reply(stream))
    setup.good.requests.clear()
    setup.garbled.requests.clear()
    calls_before = len(setup.broken_calls)
    if kind == "exception":
        route = "chain-broken"
    else:
        setup.garbled.script(fault(kind, stream))
        route = "chain-garbled"
    response = ask(setup.url, dialect, route, stream)
    assert response.status_code == 200, response.text
    assert answer_text(dialect, response, stream) == GOOD
    assert response.headers["x-serving-target"] == "good/m2"
    assert response.headers["x-serving-fallback"].endswith(":server_error")
    assert len(setup.good.requests) == 1
    if kind == "exception":
        assert len(setup.broken_calls) == calls_before + 1  # the broken client was tried
    else:
        assert len(setup.garbled.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", FAULTS)
def test_with_no_next_target_the_client_gets_its_dialects_error(
    setup: Setup, kind: str, dialect: str, stream: bool
) -> None:
    if kind == "exception":
        route = "solo-broken"
    else:
        setup.garbled.script(fault(kind, stream))
        route = "solo-garbled"
    response = ask(setup.url, dialect, route, stream)
    assert response.status_code == 502, response.text
    assert_dialect_error(dialect, response)


def test_an_upstream_stream_that_opens_with_an_error_event_fails_over(setup: Setup) -> None:
    """A same-dialect stream whose first event is an error is not relayed: it moves on."""
    error = b'data: {"error": {"message": "engine died", "type": "server_error"}}\n\n'
    setup.garbled.script(Reply.sse([error]))
    setup.good.script(good_reply(True))
    response = ask(setup.url, "openai", "chain-garbled", True)
    assert response.status_code == 200
    assert answer_text("openai", response, True) == GOOD
