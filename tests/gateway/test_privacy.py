"""Privacy routing fails closed: under every fault of the local target, a private request never
reaches the hosted upstream, whichever signal made it private (header, key policy, detector).

The hosted upstream is a recording fake placed *first* in each chain, so any leak would be
served by it and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion, chat_stream
from tests.support.raw_upstream import ResettingUpstream
from tests.support.servers import free_port, serve

FAST = {"connect": 0.5, "first_byte": 0.5, "total": 2, "stream_idle": 0.5}
NORMAL_KEY = "normal-client-key-1"
PRIVATE_KEY = "private-client-key-2"
SECRET_TEXT = "Summarise this: the customer's card is 4111 1111 1111 1111, exp 12/27."


@dataclass
class Setup:
    url: str
    hosted: FakeUpstream
    local: FakeUpstream


def config(hosted: str, local: str, reset: str, dead: int) -> dict[str, Any]:
    def local_up(name: str, url: str) -> dict[str, Any]:
        return {"name": name, "base_url": url + "/v1", "locality": "local", "timeouts": FAST}

    def chain(local_name: str) -> list[dict[str, Any]]:
        return [{"upstream": "hosted", "model": "gpt-4o"}, {"upstream": local_name, "model": "l"}]

    return {
        "server": {
            "api_keys_env": "PRIVACY_TEST_KEYS",
            "keys": [{"name": "legal", "key_env": "PRIVACY_TEST_PRIVATE_KEY", "private": True}],
        },
        "policy": {
            "retry": {
                "attempts": 1,
                "backoff_base": 0.01,
                "backoff_max": 0.02,
                "retry_after_cap": 0.5,
            },
            "circuit": {"enabled": False},
        },
        "upstreams": [
            {"name": "hosted", "base_url": hosted + "/v1", "locality": "hosted", "timeouts": FAST},
            local_up("local", local),
            local_up("refused", f"http://127.0.0.1:{dead}"),
            local_up("reset", reset),
        ],
        "routes": [
            {"model": "chat", "targets": chain("local")},
            {"model": "refused-chat", "targets": chain("refused")},
            {"model": "reset-chat", "targets": chain("reset")},
            {"model": "hosted-only", "targets": [{"upstream": "hosted", "model": "gpt-4o"}]},
        ],
    }


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    saved = {k: os.environ.get(k) for k in ("PRIVACY_TEST_KEYS", "PRIVACY_TEST_PRIVATE_KEY")}
    os.environ["PRIVACY_TEST_KEYS"] = NORMAL_KEY
    os.environ["PRIVACY_TEST_PRIVATE_KEY"] = PRIVATE_KEY
    hosted, local = FakeUpstream(), FakeUpstream()
    try:
        with (
            serve(hosted.app) as h_url,
            serve(local.app) as l_url,
            ResettingUpstream().running() as reset,
        ):
            settings = parse_settings(config(h_url, l_url, reset.url, free_port()), "privacy")
            with serve(create_app(settings)) as url:
                yield Setup(url, hosted, local)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ok(stream: bool, text: str, **kw: Any) -> Reply:
    return (
        Reply.sse(chat_stream((text,)), **kw) if stream else Reply.json(chat_completion(text), **kw)
    )


def _err(status: int, message: str = "boom", **kw: Any) -> Reply:
    return Reply.json({"error": {"message": message}}, status, **kw)


def local_faults(stream: bool) -> dict[str, tuple[str, list[Reply]]]:
    """Fault name -> (route, the local fake's script)."""
    return {
        "connection-refused": ("refused-chat", [_ok(stream, "unused")]),
        "connection-reset": ("reset-chat", [_ok(stream, "unused")]),
        "500": ("chat", [_err(500)]),
        "502": ("chat", [_err(502)]),
        "503": ("chat", [_err(503)]),
        "529": ("chat", [_err(529)]),
        "429-retry-after": ("chat", [_err(429, headers={"retry-after": "30"})]),
        "timeout-before-first-byte": ("chat", [_ok(stream, "late", delay=1.5)]),
        "malformed-json": (
            "chat",
            [Reply.sse([b"data: {oops\n\n"]) if stream else Reply.json(b'{"id": ')],
        ),
        "wrong-content-type": ("chat", [Reply.json(b"<html/>", content_type="text/html")]),
        "context-overflow": ("chat", [_err(400, "maximum context length is 10 tokens")]),
        "unknown-model": ("chat", [_err(404, "no such model")]),
        "bad-upstream-key": ("chat", [_err(401, "bad key")]),
        "invalid-request": ("chat", [_err(400, "temperature too high")]),
        "stream-cut": (
            "chat",
            [Reply.sse(chat_stream(("a", "b", "c")), cut_after=2) if stream else _err(500)],
        ),
    }


SIGNALS = ["header", "key", "detector"]


def send(s: Setup, dialect: str, stream: bool, route: str, signal: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {PRIVATE_KEY if signal == 'key' else NORMAL_KEY}"}
    if signal == "header":
        headers["x-serving-private"] = "true"
    text = SECRET_TEXT if signal == "detector" else "What is the capital of France?"
    body: dict[str, Any] = {
        "model": route,
        "max_tokens": 16,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"
    with httpx.Client(timeout=10) as client:
        r = client.post(s.url + path, json=body, headers=headers)
        r.read()
        return r


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", list(local_faults(False)))
def test_private_requests_never_reach_the_hosted_upstream(
    setup: Setup, fault: str, dialect: str, stream: bool, signal: str
) -> None:
    route, script = local_faults(stream)[fault]
    setup.local.script(*script)
    setup.hosted.script(_ok(stream, "LEAKED"))
    setup.hosted.requests.clear()
    response = send(setup, dialect, stream, route, signal)
    assert setup.hosted.requests == []
    assert b"LEAKED" not in response.content
    if fault == "invalid-request":  # the client's own error comes back as is
        assert response.status_code == 400
    elif fault == "stream-cut" and stream:  # cut after the first byte: an in-stream error
        assert response.status_code == 200
        assert b"error" in response.content
    else:
        assert response.status_code == 503, response.text
        assert "private" in response.text
        assert "no hosted target was contacted" in response.text
    if fault not in ("stream-cut", "invalid-request"):
        assert response.headers.get("x-serving-target") is None


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_the_same_faults_without_privacy_do_reach_the_hosted_upstream(
    setup: Setup, dialect: str
) -> None:
    """The control: the recording fake does receive non-private requests (and serves them first)."""
    setup.local.script(_err(500))
    setup.hosted.script(_ok(False, "from hosted"))
    setup.hosted.requests.clear()
    response = send(setup, dialect, False, "chat", None)
    assert response.status_code == 200
    assert len(setup.hosted.requests) == 1
    assert response.headers["x-serving-target"] == "hosted/gpt-4o"


@pytest.mark.parametrize("signal", SIGNALS)
def test_private_requests_are_served_locally_when_the_local_target_is_up(
    setup: Setup, signal: str
) -> None:
    setup.local.script(_ok(False, "from local"))
    setup.hosted.requests.clear()
    response = send(setup, "openai", False, "chat", signal)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "from local"
    assert response.headers["x-serving-target"] == "local/l"
    assert response.headers["x-serving-fallback"] == "hosted/gpt-4o:private"
    assert response.headers["x-serving-private"] == "true"
    assert setup.hosted.requests == []


def test_a_route_with_no_local_target_refuses_private_requests(setup: Setup) -> None:
    setup.hosted.requests.clear()
    response = send(setup, "anthropic", False, "hosted-only", "header")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert setup.hosted.requests == []


def test_private_content_is_never_logged(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.local.script(_err(500))
    setup.hosted.requests.clear()
    with caplog.at_level("DEBUG"):
        send(setup, "openai", False, "chat", "detector")
    assert caplog.records  # the decisions were logged...
    assert all("4111" not in r.getMessage() for r in caplog.records)  # ...the content was not
