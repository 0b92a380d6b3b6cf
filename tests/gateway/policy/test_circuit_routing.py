"""An open circuit costs nothing: no attempt at the target and no added latency."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from serving.gateway.app import create_app
from serving.gateway.settings import parse_settings
from tests.support.fake_upstream import FakeUpstream, Reply, chat_completion, openai_error
from tests.support.servers import serve

SLOW_FAILURE = 0.3  # each failing attempt at the flaky target takes this long


@dataclass
class Setup:
    url: str
    flaky: FakeUpstream
    backup: FakeUpstream


@pytest.fixture
def setup() -> Iterator[Setup]:
    flaky, backup = FakeUpstream(), FakeUpstream()
    flaky.script(Reply.json({"error": {"message": "down"}}, 503, delay=SLOW_FAILURE))
    backup.script(Reply.json(chat_completion("from backup")))
    with serve(flaky.app) as f_url, serve(backup.app) as b_url:
        settings = parse_settings(
            {
                "upstreams": [
                    {
                        "name": "flaky",
                        "base_url": f_url + "/v1",
                        "locality": "hosted",
                        "retry": {"attempts": 0},
                        "circuit": {"min_requests": 3, "failure_rate": 0.5, "cooldown": 60},
                    },
                    {"name": "backup", "base_url": b_url + "/v1"},
                ],
                "routes": [
                    {
                        "model": "chat",
                        "targets": [
                            {"upstream": "flaky", "model": "claude-3-5-sonnet-20241022"},
                            {"upstream": "backup", "model": "llama"},
                        ],
                    }
                ],
            }
        )
        with serve(create_app(settings)) as url:
            yield Setup(url, flaky, backup)


def ask(s: Setup, dialect: str) -> tuple[httpx.Response, float]:
    body = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    path = "/v1/chat/completions" if dialect == "openai" else "/v1/messages"
    started = time.perf_counter()
    r = httpx.post(s.url + path, json=body, timeout=10)
    return r, time.perf_counter() - started


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_open_circuit_is_skipped_without_attempt_or_latency(setup: Setup, dialect: str) -> None:
    for _ in range(3):  # three failures in a row: 100 % >= 50 % over >= 3 requests
        r, took = ask(setup, dialect)
        assert r.status_code == 200 and took >= SLOW_FAILURE
        assert r.headers["x-serving-fallback"].endswith(":server_error")
    assert len(setup.flaky.requests) == 3
    metrics = httpx.get(setup.url + "/metrics").text
    assert 'serving_circuit_state{target="flaky/claude-3-5-sonnet-20241022"} 2.0' in metrics

    for _ in range(5):
        r, took = ask(setup, dialect)
        assert r.status_code == 200
        assert r.headers["x-serving-target"] == "backup/llama"
        assert r.headers["x-serving-fallback"] == "flaky/claude-3-5-sonnet-20241022:circuit_open"
    # No attempt while open, so the open target cannot have added its wait (latency itself is
    # measured by the failover benchmark, not asserted here: a loaded CI machine makes it flaky).
    assert len(setup.flaky.requests) == 3
    metrics = httpx.get(setup.url + "/metrics").text
    assert 'reason="circuit_open",route="chat",target="flaky/claude-3-5-sonnet-20241022"' in metrics


def test_client_errors_do_not_open_the_circuit(setup: Setup) -> None:
    setup.flaky.script(openai_error(400, "bad temperature"))
    for _ in range(5):
        r, _ = ask(setup, "openai")
        assert r.status_code == 400
    setup.flaky.script(Reply.json(chat_completion("from flaky")))
    r, _ = ask(setup, "openai")
    assert r.headers["x-serving-target"] == "flaky/claude-3-5-sonnet-20241022"
