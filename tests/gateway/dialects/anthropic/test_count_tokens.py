"""`POST /v1/messages/count_tokens` walks the route's planned chain: the first target counts,
a private request is counted by local targets only, and never reaches a hosted one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.servers import serve


@dataclass
class Setup:
    url: str
    hosted: FakeUpstream
    local: FakeUpstream


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    hosted, local = FakeUpstream(), FakeUpstream()
    with ExitStack() as stack:
        hosted_url = stack.enter_context(serve(hosted.app))
        local_url = stack.enter_context(serve(local.app))
        settings = parse_settings(
            {
                "policy": {"retry": {"attempts": 0}, "circuit": {"enabled": False}},
                "upstreams": [
                    {
                        "name": "claude",
                        "dialect": "anthropic",
                        "base_url": hosted_url + "/v1",
                        "locality": "hosted",
                    },
                    {"name": "vllm", "base_url": local_url + "/v1", "locality": "local"},
                ],
                "routes": [
                    {
                        "model": "mixed",
                        "targets": [
                            {"upstream": "claude", "model": "claude-x"},
                            {"upstream": "vllm", "model": "smol"},
                        ],
                    },
                    {"model": "hosted-only", "targets": [{"upstream": "claude", "model": "c"}]},
                ],
            },
            "count-test",
        )
        url = stack.enter_context(serve(create_app(settings)))
        yield Setup(url, hosted, local)


BODY = {"model": "mixed", "messages": [{"role": "user", "content": "Hello"}]}


def count(setup: Setup, body: Mapping[str, object], private: bool = False) -> httpx.Response:
    headers = {"x-serving-private": "true"} if private else {}
    return httpx.post(setup.url + "/v1/messages/count_tokens", json=body, headers=headers)


@pytest.fixture(autouse=True)
def scripted(setup: Setup) -> None:
    setup.hosted.script(Reply.json({"input_tokens": 8}))
    setup.local.script(Reply.json({"count": 13, "max_model_len": 2048, "tokens": []}))
    setup.hosted.requests.clear()
    setup.local.requests.clear()


def test_the_first_target_counts(setup: Setup) -> None:
    response = count(setup, BODY)
    assert response.status_code == 200
    assert response.json() == {"input_tokens": 8}
    assert response.headers["request-id"].startswith("req_")
    assert [r.path for r in setup.hosted.requests] == ["/v1/messages/count_tokens"]
    assert setup.local.requests == []


def test_a_retryable_failure_moves_on(setup: Setup) -> None:
    setup.hosted.script(
        Reply.json({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, 529)
    )
    response = count(setup, BODY)
    assert response.json() == {"input_tokens": 13}
    assert [r.path for r in setup.local.requests] == ["/tokenize"]


def test_a_private_request_is_counted_locally_only(setup: Setup) -> None:
    response = count(setup, BODY, private=True)
    assert response.json() == {"input_tokens": 13}
    assert setup.hosted.requests == []


def test_a_private_request_with_no_local_target_is_blocked(setup: Setup) -> None:
    response = count(setup, {**BODY, "model": "hosted-only"}, private=True)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert "private" in response.json()["error"]["message"]
    assert setup.hosted.requests == []


def test_a_bad_body_is_the_anthropic_400(setup: Setup) -> None:
    response = count(setup, {"model": "mixed"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["x-should-retry"] == "false"
